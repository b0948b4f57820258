"""Configs that an earlier seglab saved, with the module paths of before the package layout,
load, pass the trust check and name today's classes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import get_object

from seglab.config.trust import HYDRA_CALLBACKS, TARGETS
from seglab.config.upgrade import MOVED_TARGETS, upgrade_targets
from seglab.engine.checkpoints import CHECKPOINT_KEY, load_checkpoint


@pytest.mark.parametrize("old", sorted(MOVED_TARGETS))
def test_every_moved_target_is_trusted_and_importable(old: str) -> None:
    new = MOVED_TARGETS[old]
    assert new in TARGETS | HYDRA_CALLBACKS
    assert get_object(new).__name__ == old.rsplit(".", 1)[1]


def test_upgrade_renames_nested_targets_and_keeps_the_rest() -> None:
    config = {
        "inference": {"_target_": "seglab.inference.Inferer", "mode": "whole"},
        "callbacks": [{"_target_": "seglab.callbacks.RunSummary"}, {"_target_": "x.Y"}],
    }
    assert upgrade_targets(config) == {
        "inference": {"_target_": "seglab.inference.inferer.Inferer", "mode": "whole"},
        "callbacks": [{"_target_": "seglab.engine.callbacks.RunSummary"}, {"_target_": "x.Y"}],
    }


def test_a_checkpoint_with_old_paths_loads_with_todays(tmp_path: Path) -> None:
    config = {
        "scheduler": {"_target_": "seglab.schedulers.poly", "_partial_": True},
        "callbacks": {"summary": {"_target_": "seglab.callbacks.RunSummary"}},
    }
    path = tmp_path / "old.ckpt"
    torch.save({CHECKPOINT_KEY: {"config": config}, "state_dict": {}}, path)
    stored = load_checkpoint(path)[CHECKPOINT_KEY]["config"]
    assert stored["scheduler"]["_target_"] == "seglab.engine.schedulers.poly"
    assert stored["callbacks"]["summary"]["_target_"] == "seglab.engine.callbacks.RunSummary"
