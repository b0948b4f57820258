"""callbacks=ema: the weight average is what the checkpoints hold, and a resume continues it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny import resume, train_once

from seglab.engine.checkpoints import load_checkpoint

# One step an epoch on the same two images, with a constant rate, so that runs of different
# lengths share their first steps exactly.
EMA_RUN = [
    "callbacks=ema",
    "callbacks.ema.decay=0.5",
    "data.image_size=32",
    "data.num_train=2",
    "data.num_val=2",
    "data.num_test=2",
    "data.loader.batch_size=2",
    "model.encoder.widths=[8,16,32]",
    "scheduler=none",
    "trainer.log_every_n_steps=1",
    "trainer.deterministic=true",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "test_after_fit=false",
]


@pytest.mark.slow
def test_checkpoints_hold_the_average_and_a_resume_continues_it(tmp_path: Path) -> None:
    for name in ("whole", "part"):
        (tmp_path / name).mkdir()
    whole = train_once(tmp_path / "whole", *EMA_RUN, "trainer.max_epochs=2")
    part = train_once(tmp_path / "part", *EMA_RUN, "trainer.max_epochs=1")
    first = load_checkpoint(part / "checkpoints" / "last.ckpt")
    second = load_checkpoint(whole / "checkpoints" / "last.ckpt")
    # after the first step the average is that step's weights; after the second it is halfway
    # between the two steps' weights (decay 0.5), and the trained weights are kept beside it
    averaged = 0
    for key, value in second["state_dict"].items():
        if not value.is_floating_point():
            continue
        torch.testing.assert_close(first["state_dict"][key], first["current_model_state"][key])
        step1, step2 = first["current_model_state"][key], second["current_model_state"][key]
        torch.testing.assert_close(value, (step1 + step2) / 2, msg=key)
        averaged += not torch.equal(value, step2)
    assert averaged, "the average differs from the trained weights"

    resume(part, "trainer.max_epochs=2", cwd=tmp_path / "part")
    resumed = load_checkpoint(part / "checkpoints" / "last.ckpt")
    for state in ("state_dict", "current_model_state"):
        for key, value in second[state].items():
            torch.testing.assert_close(resumed[state][key], value, msg=f"{state} {key}")
