"""seglab-train's closing lines: the run, its best score and step, the test score, what next."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from tiny import TINY
from torch.utils.tensorboard import SummaryWriter

from seglab.cli.train import main as train_main
from seglab.runs.directories import read_scalars
from seglab.runs.summary import run_summary


def test_the_summary_names_the_run_best_step_test_score_and_next_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "outputs" / "train" / "r1"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "best.ckpt").write_bytes(b"")
    writer = SummaryWriter(run)
    for step, value in [(9, 0.3), (19, 0.61234), (29, 0.5)]:
        writer.add_scalar("val/mDice", value, step)
    writer.close()
    ranking = ModelCheckpoint(monitor="val/mDice", mode="max")
    ranking.best_model_path = str(run / "checkpoints" / "best.ckpt")
    ranking.best_model_score = torch.tensor(0.61234)
    metrics = {"test/mDice": 0.5, "test/mIoU": 0.4, "test/IoU/cell": 0.3, "val/mDice": 0.6}
    lines = run_summary(run, ranking, metrics)
    assert lines[0] == "run:   outputs/train/r1"
    assert lines[1] == "best:  val/mDice 0.6123 at step 19 (outputs/train/r1/checkpoints/best.ckpt)"
    # the monitored metric first, then the other headline scores; no class, no val value
    assert lines[2] == "test:  test/mDice 0.5000, test/mIoU 0.4000 (of the best checkpoint)"
    assert "tensorboard --logdir outputs/train/r1" in lines[3]
    assert lines[4].strip() == "seglab-eval ckpt_path=outputs/train/r1/checkpoints/best.ckpt"
    # no test run, no best checkpoint: those lines are left out, not made up
    lines = run_summary(run, None, {})
    assert [line.split(":")[0] for line in lines] == ["run", "next"]


@pytest.mark.slow  # trains a tiny model
def test_a_run_ends_on_its_summary(tmp_path: Path, cli) -> None:
    code, out, err = cli(train_main, *TINY, "paths.output_root=outputs", cwd=tmp_path)
    assert code == 0, err[-3000:]
    (run,) = (tmp_path / "outputs" / "train").iterdir()
    last = out.strip().splitlines()[-5:]
    assert last[0] == f"run:   outputs/train/{run.name}"
    points = read_scalars(run)["val/mIoU"]
    step, best = max(points, key=lambda point: point[1])
    assert last[1].startswith(f"best:  val/mIoU {best:.4f} at step {step} ")
    assert last[2].startswith("test:  test/mIoU ")
    assert "test/mDice" in last[2] and "test/pixel_accuracy" in last[2]
    assert "Test metric" not in out  # Lightning's table of every class is left out
    assert (
        last[-1].strip() == f"seglab-eval ckpt_path=outputs/train/{run.name}/checkpoints/best.ckpt"
    )


@pytest.mark.slow  # a sweep of two tiny trainings
def test_a_sweep_ends_on_its_directory_best_job_and_compare(tmp_path: Path, cli) -> None:
    args = ["-m", "optimizer.lr=1e-3,1e-2", *TINY, "trainer.max_epochs=1"]
    code, out, err = cli(train_main, *args, "paths.output_root=outputs", cwd=tmp_path)
    assert code == 0, err[-3000:]
    (sweep,) = (tmp_path / "outputs" / "train" / "multirun").iterdir()
    scores = {
        job.name: max(value for _, value in read_scalars(job)["val/mIoU"])
        for job in sweep.iterdir()
        if (job / "checkpoints").is_dir()
    }
    top = max(scores.values())
    shown = f"outputs/train/multirun/{sweep.name}"
    first, best, last = out.strip().splitlines()[-3:]
    assert (first, last) == (f"sweep: {shown}", f"next:  seglab-compare {shown}")
    # the best job (either of two that tie)
    assert best in [
        f"best:  {job}: val/mIoU {top:.4f} (of 2 jobs)"
        for job, score in scores.items()
        if score == top
    ]
