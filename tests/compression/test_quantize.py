"""seglab-export quantize=int8: bad input is one line on stderr, before anything is exported.

The INT8 file itself (size, score, metadata) is tested on a trained model in test_onnx_model.py.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from seglab.cli.export import main as export_main
from seglab.engine.checkpoints import CHECKPOINT_KEY


@pytest.fixture(scope="module")
def checkpoint(compose, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny model in seglab's checkpoint format, on the synthetic data."""
    path = tmp_path_factory.mktemp("ckpt") / "best.ckpt"
    cfg = compose("train", f"paths.output_dir={path.parent}", "model.encoder.widths=[8,16,32]")
    config = {key: OmegaConf.to_container(cfg[key], resolve=True) for key in ("model", "data")}
    state = {f"model.{k}": v for k, v in instantiate(cfg.model).state_dict().items()}
    torch.save({CHECKPOINT_KEY: {"config": config}, "state_dict": state}, path)
    return path


@pytest.fixture
def export(cli, tmp_path: Path) -> Callable[..., tuple[int, str, str]]:
    return lambda *args: cli(
        export_main, *args, f"paths.output_root={tmp_path / 'outputs'}", cwd=tmp_path
    )


def _empty_folder_data(root: Path) -> Path:
    for kind in ("images", "masks"):
        (root / "train" / kind).mkdir(parents=True)
    return root


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("quantize=int8", "format=torchscript"), "quantize=int8 needs format=onnx"),
        (("quantize=int4",), "quantize=int4 is not one of: int8"),
        (("quantize=int8", "calibration.method=mse"), "calibration.method=mse is not one of"),
        (("quantize=int8", "calibration.num_images=0"), "calibration.num_images=0 must be"),
        (("quantize=int8", "data.num_train=0"), "data.num_train=0 must be at least 1"),
    ],
    ids=["torchscript", "int4", "method", "no-images", "empty-split"],
)
def test_bad_quantize_options_are_one_line(
    args: tuple[str, ...], message: str, checkpoint: Path, tmp_path: Path, export
) -> None:
    code, _, err = export(f"ckpt_path={checkpoint}", "output=m.onnx", *args)
    assert code == 2, err[-2000:]
    assert err.startswith("seglab-export: error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outputs"]


def test_an_empty_train_folder_is_refused(
    compose, checkpoint: Path, tmp_path: Path, export
) -> None:
    """A folder dataset whose train split has no images: nothing to calibrate on."""
    path = tmp_path / "folder.ckpt"
    cfg = compose("train", f"paths.output_dir={tmp_path}", "data=folder", "data.root=/absent")
    stored = torch.load(checkpoint, weights_only=True)
    stored[CHECKPOINT_KEY]["config"]["data"] = OmegaConf.to_container(cfg.data, resolve=True)
    stored[CHECKPOINT_KEY]["config"]["data"]["num_classes"] = 4
    stored[CHECKPOINT_KEY]["config"]["data"]["classes"] = ["a", "b", "c", "d"]
    torch.save(stored, path)
    root = _empty_folder_data(tmp_path / "data")
    code, _, err = export(
        f"ckpt_path={path}", "output=m.onnx", "quantize=int8", f"data.root={root}"
    )
    assert code == 2, err[-2000:]
    assert err.startswith("seglab-export: error: ") and str(root / "train") in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.onnx").exists()


def test_int8_without_onnxruntime_says_what_to_install(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, export
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now fails
    code, _, err = export(f"ckpt_path={checkpoint}", "output=m.onnx", "quantize=int8")
    assert code == 2
    assert "quantize=int8 needs onnxruntime: pip install 'seglab[export]'" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outputs"]
