"""SegmentationTask: its training loss, and what it does when that loss is not finite."""

import math
import re
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from tiny import TINY
from torch import nn
from torch.utils.data import DataLoader

from seglab.cli.train import main as train_main
from seglab.engine.checkpoints import load_checkpoint
from seglab.engine.task import SegmentationTask
from seglab.losses import CrossEntropyLoss, WeightedSumLoss
from seglab.models import ConvEncoder, Segmenter, UNetDecoder
from seglab.runs.directories import read_scalars


@pytest.mark.slow
def test_training_loss_adds_the_weighted_mean_of_the_aux_losses() -> None:
    torch.manual_seed(0)
    model = Segmenter(ConvEncoder(widths=[4, 8, 16]), UNetDecoder, 3, aux_weight=0.4)
    images, masks = torch.randn(4, 3, 16, 16), torch.randint(0, 3, (4, 16, 16))
    loss = CrossEntropyLoss()
    with torch.no_grad():
        logits, aux = model.train().forward_with_aux(images)
        aux_loss = sum(loss(a, masks) for a in aux) / len(aux)
        expected = loss(logits, masks) + 0.4 * aux_loss
    task = SegmentationTask(
        model, loss, lambda params: torch.optim.SGD(params, lr=0.0), None, ["a", "b", "c"], 255
    )
    trainer = pl.Trainer(
        fast_dev_run=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    samples = [(images[i], masks[i], f"{i}.png") for i in range(len(images))]
    trainer.fit(task, DataLoader(samples, batch_size=4))
    torch.testing.assert_close(trainer.callback_metrics["train/loss"], expected)
    torch.testing.assert_close(trainer.callback_metrics["train/loss/aux"], aux_loss)


# --- non-finite training losses -------------------------------------------------------------

# the injected NaN: the first batch of the second epoch (4 batches an epoch in TINY)
BAD_STEP = 4


@pytest.fixture
def nan_at_step(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Make the training loss NaN at `BAD_STEP`; returns the sample names of every training
    step, as the task saw them."""
    names: list[list[str]] = []
    training_step = SegmentationTask.training_step
    forward = WeightedSumLoss.forward

    def recording_step(self, batch, batch_idx):
        names.append(list(batch[2]))
        return training_step(self, batch, batch_idx)

    def nan_forward(self, logits, target):
        loss = forward(self, logits, target)
        # validation runs without gradients
        bad = torch.is_grad_enabled() and len(names) == BAD_STEP + 1
        return loss * float("nan") if bad else loss

    monkeypatch.setattr(SegmentationTask, "training_step", recording_step)
    monkeypatch.setattr(WeightedSumLoss, "forward", nan_forward)
    return names


def _finite(checkpoint: dict) -> bool:
    return all(torch.isfinite(value).all() for value in checkpoint["state_dict"].values())


@pytest.mark.slow
def test_a_nonfinite_loss_stops_the_run_naming_its_step_and_samples(
    nan_at_step: list[list[str]], tmp_path: Path, cli
) -> None:
    # losses are read back every 3 steps: the run notices step 4 at step 6
    args = (*TINY, "trainer.log_every_n_steps=3", f"paths.output_root={tmp_path}")
    code, _, err = cli(train_main, *args, cwd=tmp_path)
    assert code == 2
    (run_dir,) = (tmp_path / "train").iterdir()
    (line,) = err.strip().splitlines()
    # the step and its samples, where the checkpoints are, and the two ways on
    bad = f"training loss is nan at step {BAD_STEP} (epoch 1, batch 0)"
    assert line.startswith(f"seglab-train: error: {bad}"), line
    assert f"samples [{', '.join(nan_at_step[BAD_STEP])}]" in line
    assert f"(on_nonfinite=stop) and kept the checkpoints written before it in {run_dir}" in line
    assert re.search(r"resume from one .*, or skip such batches with on_nonfinite=skip$", line)
    assert len(nan_at_step) == BAD_STEP + 3
    assert all(name.startswith("synthetic train sample ") for name in nan_at_step[BAD_STEP])
    for name in ("best.ckpt", "last.ckpt"):
        checkpoint = load_checkpoint(run_dir / "checkpoints" / name)
        assert checkpoint["epoch"] == 0 and _finite(checkpoint), name


@pytest.mark.slow
def test_skip_leaves_a_nonfinite_batch_out_of_the_update(
    nan_at_step: list[list[str]], tmp_path: Path, cli
) -> None:
    args = (*TINY, "on_nonfinite=skip", "test_after_fit=false", f"paths.output_root={tmp_path}")
    code, out, err = cli(train_main, *args, cwd=tmp_path)
    assert code == 0, err[-3000:]
    (warning,) = [line for line in (out + err).splitlines() if "skipping the batch" in line]
    assert warning.endswith(
        f"skipping the batch: training loss is nan at step {BAD_STEP} (epoch 1, batch 0) of the "
        f"samples [{', '.join(nan_at_step[BAD_STEP])}]"
    )
    (run_dir,) = (tmp_path / "train").iterdir()
    # a NaN gradient would have made every weight NaN; the skipped step logged no loss
    assert _finite(load_checkpoint(run_dir / "checkpoints" / "last.ckpt"))
    losses = [value for _, value in read_scalars(run_dir)["train/loss"]]
    assert len(losses) == 7 and all(math.isfinite(value) for value in losses)


def test_channels_last_puts_the_weights_and_the_images_in_nhwc() -> None:
    model = Segmenter(ConvEncoder(widths=[4, 8]), UNetDecoder, 3)
    task = SegmentationTask(model, CrossEntropyLoss(), torch.optim.SGD, None, ["a", "b", "c"], 255)
    images = torch.randn(2, 3, 8, 8)
    assert task.in_model_format(images) is images
    task = SegmentationTask(
        model, CrossEntropyLoss(), torch.optim.SGD, None, ["a", "b", "c"], 255, channels_last=True
    )
    convs = [m.weight for m in task.model.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert task.in_model_format(images).is_contiguous(memory_format=torch.channels_last)
