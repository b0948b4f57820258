"""Resuming an interrupted seglab-train run: same run directory, same TensorBoard curves."""

from __future__ import annotations

import hashlib
import re
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from tiny import (
    BATCHES,
    EPOCHS,
    inside_epoch,
    interruptible,
    last_checkpoint,
    run_here,
    start_training,
    train_steps,
)

from seglab.cli.train import main as train_main
from seglab.engine.checkpoints import load_checkpoint
from seglab.runs.directories import load_events, read_scalars


@pytest.fixture
def train(cli) -> Callable[..., tuple[int, str]]:
    """``train(*args, cwd=folder)``: seglab-train in this process; exit code and stderr."""

    def run(*args: str, cwd: Path) -> tuple[int, str]:
        code, _, err = cli(train_main, *args, cwd=cwd)
        return code, err

    return run


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A run killed (SIGKILL) during its third epoch, then resumed from its last.ckpt alone."""
    root = tmp_path_factory.mktemp("resume")
    process = start_training(
        *interruptible(), f"paths.output_root={root}", cwd=root, log=root / "log"
    )
    try:
        # some of epoch 3 reaches TensorBoard, to be dropped and logged again on resume
        run_dir = inside_epoch(root, process, 3)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    best = run_dir / "checkpoints" / "best.ckpt"
    killed = {
        "checkpoint": last_checkpoint(run_dir),
        "train_steps": train_steps(run_dir),
        "records": {
            name: (run_dir / ".hydra" / name).read_text()
            for name in ("config.yaml", "config_resolved.yaml", "environment.json")
        },
        "best": (hashlib.sha256(best.read_bytes()).hexdigest(), load_checkpoint(best)),
    }
    # the killed process is gone: the resume, here, has only what it left on disk
    code = run_here(train_main, f"ckpt_path={run_dir}/checkpoints/last.ckpt", cwd=root)
    assert code == 0, f"the resume exited with {code}"
    return {"root": root, "run_dir": run_dir, "killed": killed}


@pytest.mark.slow
def test_killed_run_resumes_in_place_without_repeated_or_missing_epochs(resumed_run) -> None:
    root, run_dir, killed = resumed_run["root"], resumed_run["run_dir"], resumed_run["killed"]
    assert killed["checkpoint"]["epoch"] == 1, "the kill must land in the third epoch"
    assert max(killed["train_steps"]) >= 2 * BATCHES, "the third epoch had logged points"

    assert list((root / "train").iterdir()) == [run_dir], "no new run directory"
    assert not list(run_dir.glob("*/events.out.tfevents.*")), "one TensorBoard run"
    scalars = read_scalars(run_dir)
    assert [step for step, _ in scalars["train/loss"]] == list(range(EPOCHS * BATCHES))
    val_steps = [step for step, _ in scalars["val/mIoU"]]
    assert val_steps == [BATCHES * (epoch + 1) - 1 for epoch in range(EPOCHS)]
    best = max(value for _, value in scalars["val/mIoU"])
    assert scalars["val/mIoU_best"][-1][1] == pytest.approx(best)
    assert "test/mIoU" in scalars
    images = [event.step for event in load_events(run_dir).Images("val/predictions")]
    assert images == val_steps

    # every epoch trained and validated once, none twice
    assert len(set(val_steps)) == EPOCHS
    trained = {int(epoch) for step, epoch in scalars["epoch"] if step < EPOCHS * BATCHES}
    assert sorted(trained) == list(range(EPOCHS))

    assert load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["epoch"] == EPOCHS - 1
    best_ckpt = load_checkpoint(run_dir / "checkpoints" / "best.ckpt")
    assert best_ckpt["seglab"]["best"]["mIoU"] == pytest.approx(best)
    # best.ckpt survived the kill: the same file, unless a resumed epoch beat it
    digest, at_kill = killed["best"]
    resumed_best = max(value for step, value in scalars["val/mIoU"] if step >= 2 * BATCHES)
    if resumed_best > at_kill["seglab"]["best"]["mIoU"]:
        assert best_ckpt["epoch"] >= 2
    else:
        best_file = run_dir / "checkpoints" / "best.ckpt"
        assert hashlib.sha256(best_file.read_bytes()).hexdigest() == digest
    for name, text in killed["records"].items():
        assert (run_dir / ".hydra" / name).read_text() == text, f"{name} of the run was kept"
    (record,) = (run_dir / ".hydra").glob("resume-*")
    assert "ckpt_path=" in (record / "overrides.yaml").read_text()
    for name in ("config.yaml", "config_resolved.yaml", "environment.json"):
        assert (record / name).is_file(), name


@pytest.mark.slow
@pytest.mark.parametrize("how", ["ckpt_path", "resume=true", "resume=<run>"])
def test_resuming_a_finished_run_says_so(resumed_run, how: str, tmp_path: Path, train) -> None:
    run_dir = resumed_run["run_dir"]
    args = {
        "ckpt_path": (f"ckpt_path={run_dir}/checkpoints/last.ckpt",),
        "resume=true": ("resume=true",),
        "resume=<run>": (f"resume={run_dir}",),
    }[how]
    cwd = run_dir if how == "resume=true" else tmp_path
    code, err = train(*args, cwd=cwd)
    assert code == 2
    (line,) = err.strip().splitlines()
    finished = f"run {run_dir} already finished its trainer.max_epochs={EPOCHS} epochs"
    assert line.startswith(f"seglab-train: error: {finished}"), line
    assert re.search(r"score it with seglab-eval, or train longer in a new run$", line), line
    assert len(list((run_dir / ".hydra").glob("resume-*"))) == 1, "a refusal records nothing"


@pytest.mark.slow
def test_a_fresh_run_still_refuses_a_run_directory(resumed_run, tmp_path: Path, train) -> None:
    run_dir = resumed_run["run_dir"]
    code, err = train(f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert code == 2
    held = ".hydra, checkpoints, events.out.tfevents.*"
    assert f"run directory {run_dir} already holds {held} of another run" in err


def test_resume_without_a_checkpoint_names_the_missing_file(tmp_path: Path, train) -> None:
    code, err = train("resume=true", cwd=tmp_path)
    assert code == 2
    (line,) = err.strip().splitlines()
    missing = f"no checkpoint to resume: {tmp_path}/checkpoints/last.ckpt does not exist"
    assert line.startswith(f"seglab-train: error: {missing}"), line
    assert re.search(r"resume=true works from inside a run .*resume=<run dir> from anywhere", line)
    assert not (tmp_path / ".hydra").exists(), "nothing written into a directory that is no run"


def test_resume_from_a_foreign_checkpoint_says_why(tmp_path: Path, train) -> None:
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": {}}, tmp_path / "run" / "checkpoints" / "last.ckpt")
    code, err = train(f"resume={tmp_path / 'run'}", cwd=tmp_path)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert f"{tmp_path}/run/checkpoints/last.ckpt is not a seglab checkpoint" in lines[0]
