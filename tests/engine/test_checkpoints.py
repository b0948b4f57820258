"""Checkpoints under faults: atomic writes, a failing disk, signals, damaged and hostile files."""

from __future__ import annotations

import errno
import os
import re
import signal
from pathlib import Path

import pytest
import torch
from PIL import Image
from tiny import (
    BATCHES,
    TINY,
    inside_epoch,
    interruptible,
    start_training,
)

import seglab
from seglab.cli.eval import main as eval_main
from seglab.cli.export import main as export_main
from seglab.cli.predict import main as predict_main
from seglab.cli.train import main as train_main
from seglab.engine.checkpoints import (
    AtomicCheckpointIO,
    CheckpointWriteError,
    StopOnSignal,
    load_checkpoint,
)
from seglab.errors import SeglabError
from seglab.runs.directories import read_scalars

# --- atomic writes ------------------------------------------------------------------------


def _partials(folder: Path) -> list[Path]:
    return [path for path in folder.iterdir() if path.name.endswith(".partial")]


def test_a_save_replaces_the_checkpoint_whole_with_the_umask_permissions(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"weight": torch.zeros(3)}, path)
    io.save_checkpoint({"weight": torch.ones(3)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["weight"], torch.ones(3))
    assert not _partials(path.parent)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_failed_write_leaves_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"weight": torch.zeros(1000)}, path)
    before = path.read_bytes()

    def disk_full(obj: object, file, *args, **kwargs) -> None:
        file.write(before[: len(before) // 2])  # half a checkpoint reaches the disk
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(CheckpointWriteError) as failure:
        io.save_checkpoint({"weight": torch.ones(1000)}, path)
    # the file and the cause, and that the previous checkpoint still holds
    message = str(failure.value)
    assert re.match(
        rf"could not write checkpoint {re.escape(str(path))} \(OSError: .*space", message
    )
    assert message.endswith("the previous last.ckpt is unchanged"), message
    assert path.read_bytes() == before
    assert not _partials(tmp_path)


def test_a_partial_file_left_by_a_killed_writer_goes_with_the_next_save(tmp_path: Path) -> None:
    stale = tmp_path / ".last.ckpt.0123456789ab.partial"
    stale.write_bytes(b"PK\x03\x04 cut short")
    AtomicCheckpointIO().save_checkpoint({"step": 1}, tmp_path / "last.ckpt")
    assert not stale.exists()


@pytest.mark.slow
def test_a_run_whose_checkpoint_write_fails_stops_and_keeps_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    save = torch.save

    def disk_full_in_second_epoch(checkpoint: dict, file, *args, **kwargs) -> None:
        if checkpoint["epoch"] == 1:
            file.write(b"PK\x03\x04")
            raise OSError(errno.ENOSPC, "No space left on device")
        save(checkpoint, file, *args, **kwargs)

    monkeypatch.setattr(torch, "save", disk_full_in_second_epoch)
    code, _, err = cli(train_main, *TINY, f"paths.output_root={tmp_path}", cwd=tmp_path)
    assert code == 2
    (line,) = err.strip().splitlines()
    (run_dir,) = (tmp_path / "train").iterdir()
    assert line.startswith(f"seglab-train: error: could not write checkpoint {run_dir}")
    assert line.endswith(".ckpt is unchanged")
    for name in ("best.ckpt", "last.ckpt"):
        assert load_checkpoint(run_dir / "checkpoints" / name)["epoch"] == 0, name
    assert not _partials(run_dir / "checkpoints")


@pytest.mark.slow
def test_last_checkpoint_is_written_every_epoch_whatever_the_metric_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    saved: list[tuple[str, int]] = []
    save = AtomicCheckpointIO.save_checkpoint

    def recording_save(self, checkpoint: dict, path, storage_options=None) -> None:
        saved.append((Path(path).name, checkpoint["epoch"]))
        save(self, checkpoint, path, storage_options)

    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", recording_save)
    # a metric that never improves on its first value: best.ckpt is written once
    ranked_by_epoch = (
        "callbacks.model_checkpoint.monitor=epoch",
        "callbacks.model_checkpoint.mode=min",
    )
    args = (*TINY, *ranked_by_epoch, "trainer.max_epochs=3", "test_after_fit=false")
    code, _, err = cli(train_main, *args, f"paths.output_root={tmp_path}", cwd=tmp_path)
    assert code == 0, err[-3000:]
    assert [epoch for name, epoch in saved if name == "last.ckpt"] == [0, 1, 2]
    assert [epoch for name, epoch in saved if name == "best.ckpt"] == [0]


# --- checkpoints that would run code ------------------------------------------------------


class _CreatesFile:
    """Unpickled, this creates ``path``: the harm a hostile checkpoint could do, made visible."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return open, (str(self.path), "w")


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, Path]:
    """A checkpoint shaped like seglab's whose pickle would create a marker file, and that
    marker's path."""
    marker = tmp_path / "payload-ran"
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    checkpoint = {
        "seglab": {"config": {"data": {"num_classes": 4}}, "classes": ["a"]},
        "state_dict": {"model.weight": torch.zeros(1)},
        "epoch": 0,
        "payload": _CreatesFile(marker),
    }
    torch.save(checkpoint, path)
    return path, marker


def _refused(message: str, path: Path) -> bool:
    return f"ckpt_path={path} holds pickled objects that are not tensors or plain data" in message


@pytest.mark.parametrize("command", ["seglab-eval", "seglab-predict"])
def test_console_scripts_refuse_a_checkpoint_that_would_run_code(
    command: str, hostile: tuple[Path, Path], tmp_path: Path, cli
) -> None:
    path, marker = hostile
    image = tmp_path / "photo.png"
    Image.new("RGB", (8, 8)).save(image)
    args = {
        "seglab-eval": [f"ckpt_path={path}", "split=val"],
        "seglab-predict": [f"ckpt_path={path}", f"input={image}", f"output={tmp_path / 'out'}"],
    }[command]
    main = {"seglab-eval": eval_main, "seglab-predict": predict_main}[command]
    code, _, err = cli(main, *args, f"paths.output_root={tmp_path}", cwd=tmp_path)
    assert code == 2, err[-2000:]
    (line,) = err.strip().splitlines()
    assert line.startswith(f"{command}: error: ") and _refused(line, path), line
    assert not marker.exists(), "the checkpoint's payload ran"
    # the file is hostile indeed: an unrestricted load runs the payload
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_load_export_and_resume_refuse_a_checkpoint_that_would_run_code(
    hostile: tuple[Path, Path], tmp_path: Path, cli
) -> None:
    path, marker = hostile
    with pytest.raises(SeglabError) as failure:
        seglab.load(path)
    assert _refused(str(failure.value), path)
    code, _, err = cli(
        export_main,
        f"ckpt_path={path}",
        f"output={tmp_path / 'model.onnx'}",
        f"paths.output_root={tmp_path}",
        cwd=tmp_path,
    )
    assert code == 2 and _refused(err, path)
    code, _, err = cli(train_main, f"ckpt_path={path}", cwd=tmp_path)
    assert code == 2 and _refused(err, path)
    assert not marker.exists()


# --- a damaged last.ckpt --------------------------------------------------------------------


@pytest.mark.slow
def test_a_damaged_last_checkpoint_resumes_from_best_with_a_warning(tmp_path: Path, cli) -> None:
    code, _, err = cli(train_main, *TINY, f"paths.output_root={tmp_path}", cwd=tmp_path)
    assert code == 0, err[-3000:]
    (run_dir,) = (tmp_path / "train").iterdir()
    last, best = run_dir / "checkpoints" / "last.ckpt", run_dir / "checkpoints" / "best.ckpt"
    best_epoch = load_checkpoint(best)["epoch"]
    last.write_bytes(last.read_bytes()[:1000])  # a disk that lost the end of the file

    code, out, err = cli(
        train_main,
        f"ckpt_path={last}",
        "trainer.max_epochs=3",
        cwd=tmp_path,
    )
    assert code == 0, err[-3000:]
    (warning,) = [line for line in (out + err).splitlines() if "resuming from" in line]
    assert f"ckpt_path={last} is not a loadable checkpoint" in warning
    assert f"resuming from {best} instead (epoch {best_epoch})" in warning
    assert load_checkpoint(last)["epoch"] == 2
    val_steps = [step for step, _ in read_scalars(run_dir)["val/mIoU"]]
    assert len(val_steps) == 3 == len(set(val_steps)), "each epoch validated once"


# --- signals --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A run sent SIGTERM during the second of its two epochs."""
    root = tmp_path_factory.mktemp("sigterm")
    log = root / "stopped.log"
    process = start_training(*interruptible(2), f"paths.output_root={root}", cwd=root, log=log)
    try:
        run_dir = inside_epoch(root, process, 2)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=120)
    finally:
        process.kill()
        process.wait()
    return {"root": root, "run_dir": run_dir, "code": code, "output": log.read_text()}


@pytest.mark.slow
def test_sigterm_writes_last_checkpoint_of_that_batch_and_exits(stopped_run: dict) -> None:
    run_dir, last = stopped_run["run_dir"], stopped_run["run_dir"] / "checkpoints" / "last.ckpt"
    assert stopped_run["code"] == 128 + signal.SIGTERM
    assert f"continue with: seglab-train ckpt_path={last}" in stopped_run["output"]
    assert "Traceback" not in stopped_run["output"]
    checkpoint = load_checkpoint(last)
    assert checkpoint["epoch"] == 1 and BATCHES < checkpoint["global_step"] < 2 * BATCHES
    assert not _partials(run_dir / "checkpoints")


@pytest.mark.slow
def test_a_run_stopped_by_sigterm_resumes_from_the_batch_it_stopped_at(
    stopped_run: dict, cli
) -> None:
    run_dir = stopped_run["run_dir"]
    code, _, err = cli(
        train_main,
        f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
        cwd=stopped_run["root"],
    )
    assert code == 0, err[-3000:]
    scalars = read_scalars(run_dir)
    assert [step for step, _ in scalars["train/loss"]] == list(range(2 * BATCHES))
    assert [step for step, _ in scalars["val/mIoU"]] == [BATCHES - 1, 2 * BATCHES - 1]
    assert load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["epoch"] == 1


class _OneProcess:
    world_size = 1


def test_a_second_ctrl_c_stops_at_once_and_the_handlers_are_given_back() -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    callback = StopOnSignal("unused/last.ckpt")
    callback.on_train_start(_OneProcess(), None)
    try:
        os.kill(os.getpid(), signal.SIGINT)
        assert callback.received == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        callback.teardown(_OneProcess(), None, "fit")
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
