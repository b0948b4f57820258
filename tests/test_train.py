"""End to end through the command line: train a tiny run, read it back, evaluate it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seglab.runs import load_events, read_hparams, read_scalars

TINY = [
    "data.image_size=32",
    "data.num_train=32",
    "data.num_val=16",
    "data.num_test=16",
    "data.batch_size=8",
    "model.encoder.widths=[8,16,32]",
    "trainer.max_epochs=2",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]


def _run(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    result = _run("seglab.train", *TINY, f"paths.output_root={root}", cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (root / "train").iterdir()
    return run_dir


@pytest.mark.slow
def test_run_directory_holds_config_checkpoints_and_events(trained_run: Path) -> None:
    for name in ("config.yaml", "config_resolved.yaml", "overrides.yaml", "hydra.yaml"):
        assert (trained_run / ".hydra" / name).is_file(), name
    assert (trained_run / "checkpoints" / "best.ckpt").is_file()
    assert (trained_run / "checkpoints" / "last.ckpt").is_file()
    checkpoint = torch.load(trained_run / "checkpoints" / "best.ckpt", weights_only=True)
    assert checkpoint["seglab"]["config"]["data"]["image_size"] == 32


@pytest.mark.slow
def test_tensorboard_has_every_promised_tag(trained_run: Path) -> None:
    scalars = read_scalars(trained_run)
    classes = ["background", "ellipse", "rectangle", "triangle"]
    expected = ["train/loss", "train/lr", "val/loss", "val/mIoU_best", "val/mDice_best"]
    for stage in ("val", "test"):
        expected += [f"{stage}/{m}" for m in ("mIoU", "mDice", "pixel_accuracy")]
        expected += [f"{stage}/{m}/{c}" for m in ("IoU", "Dice") for c in classes]
    missing = [tag for tag in expected if tag not in scalars]
    assert not missing, missing
    assert len(scalars["val/mIoU"]) == 2, "one val point per epoch, no sanity-check point"
    best = max(value for _, value in scalars["val/mIoU"])
    assert scalars["val/mIoU_best"][-1][1] == pytest.approx(best)
    events = load_events(trained_run)
    assert set(events.Tags()["images"]) >= {"val/predictions", "val/confusion_matrix"}
    assert len(events.Images("val/predictions")) == 2
    assert "hp_metric" not in scalars
    params, metrics = read_hparams(trained_run)
    assert params["data.image_size"] == 32
    assert "val/mIoU_best" in metrics
    assert any("config" in tag for tag in events.Tags()["tensors"])


@pytest.mark.slow
def test_eval_reproduces_the_best_logged_val_miou(trained_run: Path, tmp_path: Path) -> None:
    ckpt = trained_run / "checkpoints" / "best.ckpt"
    result = _run(
        "seglab.eval",
        f"ckpt_path={ckpt}",
        "split=val",
        f"paths.output_root={tmp_path}",
        "trainer.enable_progress_bar=false",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "background" in result.stdout and "IoU" in result.stdout
    (eval_dir,) = (tmp_path / "eval").iterdir()
    report = json.loads((eval_dir / "metrics.json").read_text())
    assert set(report) >= {"mIoU", "mDice", "pixel_accuracy", "per_class"}
    assert set(report["per_class"]["triangle"]) == {"IoU", "Dice"}
    best = max(value for _, value in read_scalars(trained_run)["val/mIoU"])
    assert report["mIoU"] == pytest.approx(best, abs=1e-4)


@pytest.mark.slow
def test_eval_overrides_apply_on_top_of_the_checkpoint(trained_run: Path, tmp_path: Path) -> None:
    ckpt = trained_run / "checkpoints" / "best.ckpt"
    result = _run(
        "seglab.eval",
        f"ckpt_path={ckpt}",
        "split=test",
        "data.num_test=4",
        f"paths.output_root={tmp_path}",
        "trainer.enable_progress_bar=false",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (eval_dir,) = (tmp_path / "eval").iterdir()
    assert json.loads((eval_dir / "metrics.json").read_text())["split"] == "test"


def test_eval_of_a_missing_checkpoint_fails_in_one_line(tmp_path: Path) -> None:
    result = _run(
        "seglab.eval", "ckpt_path=nowhere.ckpt", f"paths.output_root={tmp_path}", cwd=tmp_path
    )
    assert result.returncode != 0
    assert result.stderr.strip() == "seglab-eval: error: ckpt_path=nowhere.ckpt does not exist"


def test_eval_of_a_foreign_checkpoint_says_why(tmp_path: Path) -> None:
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    result = _run(
        "seglab.eval", "ckpt_path=other.ckpt", f"paths.output_root={tmp_path}", cwd=tmp_path
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "other.ckpt is not a seglab checkpoint" in lines[0]


def test_train_rejects_an_unknown_group_option(tmp_path: Path) -> None:
    result = _run("seglab.train", "model/encoder=no_such_encoder", cwd=tmp_path)
    assert result.returncode != 0
    assert "no_such_encoder" in result.stderr
    assert not (tmp_path / "outputs").exists()
