"""Resuming an interrupted seglab-train run: same run directory, same TensorBoard curves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from seglab.experiment import load_checkpoint
from seglab.runs import load_events, read_scalars
from seglab.train import main as train_main

EPOCHS = 4
# 24 batches an epoch, each one logged and flushed: the kill has time to land inside an epoch
BATCHES = 24
TINY = [
    "data.image_size=32",
    f"data.num_train={BATCHES * 4}",
    "data.num_val=8",
    "data.num_test=8",
    "data.batch_size=4",
    "model.encoder.widths=[8,16,32]",
    f"trainer.max_epochs={EPOCHS}",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}


def _last_checkpoint(run_dir: Path) -> dict | None:
    """last.ckpt once it is whole (it may be read while being written)."""
    try:
        return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    except Exception:
        return None


def _train_steps(run_dir: Path) -> list[int]:
    try:
        return [step for step, _ in read_scalars(run_dir).get("train/loss", [])]
    except Exception:  # no event file yet, or one being written
        return []


def _wait(condition: Callable[[], bool], process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 240
    while not condition():
        assert process.poll() is None, f"training ended (code {process.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _cli(
    *args: str, cwd: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """seglab-train in this process: exit code and stderr."""
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["seglab-train", *args])
    code = 0
    try:
        train_main()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A run killed (SIGKILL) during its third epoch, then resumed from its last.ckpt alone."""
    root = tmp_path_factory.mktemp("resume")
    with open(root / "killed.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "seglab.train", *TINY, f"paths.output_root={root}"],
            cwd=root,
            env=ENV,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait(lambda: any((root / "train").glob("*/checkpoints")), process, "a run dir")
            (run_dir,) = (root / "train").iterdir()
            _wait(
                lambda: (_last_checkpoint(run_dir) or {}).get("epoch") == 1,
                process,
                "last.ckpt of epoch 2",
            )
            # some of epoch 3 reaches TensorBoard, to be dropped and logged again on resume
            _wait(lambda: max(_train_steps(run_dir), default=0) > 2 * BATCHES, process, "epoch 3")
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
    killed = {
        "checkpoint": _last_checkpoint(run_dir),
        "train_steps": _train_steps(run_dir),
        "records": {
            name: (run_dir / ".hydra" / name).read_text()
            for name in ("config.yaml", "config_resolved.yaml", "environment.json")
        },
    }
    resumed = subprocess.run(
        [sys.executable, "-m", "seglab.train", f"ckpt_path={run_dir}/checkpoints/last.ckpt"],
        cwd=root,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return {"root": root, "run_dir": run_dir, "killed": killed}


@pytest.mark.slow
def test_killed_run_resumes_in_place_without_repeated_or_missing_epochs(resumed_run) -> None:
    root, run_dir, killed = resumed_run["root"], resumed_run["run_dir"], resumed_run["killed"]
    assert killed["checkpoint"]["epoch"] == 1, "the kill must land in the third epoch"
    assert max(killed["train_steps"]) >= 2 * BATCHES, "the third epoch had logged points"

    assert list((root / "train").iterdir()) == [run_dir], "no new run directory"
    tensorboard = run_dir / "tensorboard"
    assert not [path for path in tensorboard.iterdir() if path.is_dir()], "one TensorBoard run"
    scalars = read_scalars(run_dir)
    assert [step for step, _ in scalars["train/loss"]] == list(range(EPOCHS * BATCHES))
    val_steps = [step for step, _ in scalars["val/mIoU"]]
    assert val_steps == [BATCHES * (epoch + 1) - 1 for epoch in range(EPOCHS)]
    best = max(value for _, value in scalars["val/mIoU"])
    assert scalars["val/mIoU_best"][-1][1] == pytest.approx(best)
    assert "test/mIoU" in scalars
    images = [event.step for event in load_events(run_dir).Images("val/predictions")]
    assert images == val_steps

    assert load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["epoch"] == EPOCHS - 1
    best_ckpt = load_checkpoint(run_dir / "checkpoints" / "best.ckpt")
    assert best_ckpt["seglab"]["best"]["mIoU"] == pytest.approx(best)
    for name, text in killed["records"].items():
        assert (run_dir / ".hydra" / name).read_text() == text, f"{name} of the run was kept"
    (record,) = (run_dir / ".hydra").glob("resume-*")
    assert "ckpt_path=" in (record / "overrides.yaml").read_text()
    for name in ("config.yaml", "config_resolved.yaml", "environment.json"):
        assert (record / name).is_file(), name


@pytest.mark.slow
@pytest.mark.parametrize("how", ["ckpt_path", "resume=true", "resume=<run>"])
def test_resuming_a_finished_run_says_so(
    resumed_run, how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    run_dir = resumed_run["run_dir"]
    args = {
        "ckpt_path": (f"ckpt_path={run_dir}/checkpoints/last.ckpt",),
        "resume=true": ("resume=true",),
        "resume=<run>": (f"resume={run_dir}",),
    }[how]
    cwd = run_dir if how == "resume=true" else tmp_path
    code, err = _cli(*args, cwd=cwd, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        f"seglab-train: error: run {run_dir} already finished its trainer.max_epochs={EPOCHS} "
        f"epochs ({run_dir}/checkpoints/last.ckpt); nothing to resume; score it with "
        "seglab-eval, or train longer in a new run"
    ]
    assert len(list((run_dir / ".hydra").glob("resume-*"))) == 1, "a refusal records nothing"


@pytest.mark.slow
def test_a_fresh_run_still_refuses_a_run_directory(
    resumed_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    run_dir = resumed_run["run_dir"]
    code, err = _cli(
        f"hydra.run.dir={run_dir}", cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys
    )
    assert code == 2
    assert f"run directory {run_dir} already holds checkpoints, tensorboard" in err


def test_resume_without_a_checkpoint_names_the_missing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    code, err = _cli("resume=true", cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        f"seglab-train: error: no checkpoint to resume: {tmp_path}/checkpoints/last.ckpt does not "
        "exist; resume=true works from inside a run directory of seglab-train, resume=<run dir> "
        "from anywhere"
    ]
    assert not (tmp_path / ".hydra").exists(), "nothing written into a directory that is no run"


def test_resume_from_a_foreign_checkpoint_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": {}}, tmp_path / "run" / "checkpoints" / "last.ckpt")
    code, err = _cli(
        f"resume={tmp_path / 'run'}", cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys
    )
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert f"{tmp_path}/run/checkpoints/last.ckpt is not a seglab checkpoint" in lines[0]
