"""seglab-export: the exported ONNX and TorchScript files reproduce PyTorch's logits at sizes
other than the export sample's, and bad input is one line on stderr."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

import seglab
from seglab.cli.export import main as export_main
from seglab.engine.checkpoints import CHECKPOINT_KEY

# sizes the export command does not check itself: other batch sizes, odd heights and widths
SHAPES = [(3, 3, 45, 70), (1, 3, 128, 33)]
TOLERANCE = 1e-4


def _checkpoint(compose, path: Path, *overrides: str) -> Path:
    """A checkpoint in seglab's format (what load_checkpoint reads) of an untrained tiny model;
    its batch-norm statistics are randomised so that they matter in the comparison."""
    cfg = compose(
        "train", f"paths.output_dir={path.parent}", "model.encoder.widths=[8,16,32]", *overrides
    )
    config = {
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "data": OmegaConf.to_container(cfg.data, resolve=True),
    }
    model = instantiate(cfg.model)
    generator = torch.Generator().manual_seed(0)
    for name, buffer in model.named_buffers():
        if name.endswith(("running_mean", "running_var")):
            buffer.copy_(torch.rand(buffer.shape, generator=generator) + 0.5)
    state_dict = {f"model.{key}": value for key, value in model.state_dict().items()}
    torch.save({CHECKPOINT_KEY: {"config": config}, "state_dict": state_dict}, path)
    return path


@pytest.fixture(scope="module")
def checkpoint(compose, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _checkpoint(compose, tmp_path_factory.mktemp("ckpt") / "best.ckpt")


@pytest.fixture
def export(cli, tmp_path: Path) -> Callable[..., tuple[int, str, str]]:
    """``export(*args)``: seglab-export run from the test's folder, its outputs below it."""
    return lambda *args: cli(
        export_main, *args, f"paths.output_root={tmp_path / 'outputs'}", cwd=tmp_path
    )


def _largest_differences(ckpt: Path, run) -> list[float]:
    model = seglab.load(ckpt).model
    differences = []
    for shape in SHAPES:
        image = torch.randn(shape)
        with torch.no_grad():
            expected = model(image)
        actual = run(image)
        assert actual.shape == expected.shape
        differences.append(float((actual - expected).abs().max()))
    return differences


def _onnx_runner(path: Path):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (image,), (logits,) = session.get_inputs(), session.get_outputs()
    assert (image.name, logits.name) == ("image", "logits")
    # batch, height and width are symbols (strings), the channels a number
    assert [isinstance(d, str) for d in image.shape] == [True, False, True, True]
    return lambda x: torch.from_numpy(session.run(["logits"], {"image": x.numpy()})[0])


@pytest.mark.slow  # an ONNX export takes 10-30 s on a small CPU
@pytest.mark.parametrize(
    "overrides",
    [
        (),
        ("model/decoder=fpn", "model/attention=cbam", "model.attention_at=decoder"),
        ("model/decoder=pspnet",),  # pools into cells computed from the symbolic size
    ],
    ids=["default", "fpn-cbam", "pspnet"],
)
def test_onnx_matches_pytorch_at_two_sizes(
    overrides: tuple[str, ...], checkpoint: Path, tmp_path: Path, compose, export
) -> None:
    ckpt = _checkpoint(compose, tmp_path / "model.ckpt", *overrides) if overrides else checkpoint
    previous = os.umask(0o022)
    try:
        code, out, err = export(f"ckpt_path={ckpt}", "output=m.onnx")
    finally:
        os.umask(previous)
    assert code == 0, err[-2000:]
    assert out.count("largest |logits - PyTorch's|") == 2
    differences = _largest_differences(ckpt, _onnx_runner(tmp_path / "m.onnx"))
    assert max(differences) <= TOLERANCE, differences
    # under umask 022 (set by the test) a colleague can read it, as any other file seglab writes
    assert (tmp_path / "m.onnx").stat().st_mode & 0o777 == 0o644


def test_torchscript_matches_pytorch_at_two_sizes(checkpoint: Path, tmp_path: Path, export) -> None:
    output = tmp_path / "model.pt"
    code, out, err = export(f"ckpt_path={checkpoint}", "format=torchscript", f"output={output}")
    assert code == 0, err[-2000:]
    assert f"torchscript model written to {output}" in out
    loaded = torch.jit.load(str(output))

    def run(image: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return loaded(image)

    differences = _largest_differences(checkpoint, run)
    assert max(differences) <= TOLERANCE, differences


def test_existing_output_is_kept_unless_overwrite(checkpoint: Path, tmp_path: Path, export) -> None:
    (tmp_path / "model.pt").write_text("keep me")
    args = (f"ckpt_path={checkpoint}", "format=torchscript", "output=model.pt")
    code, _, err = export(*args)
    assert code == 2
    assert "output=model.pt already exists" in err and "overwrite=true" in err
    assert (tmp_path / "model.pt").read_text() == "keep me"
    code, _, err = export(*args, "overwrite=true")
    assert code == 0, err[-2000:]
    torch.jit.load(str(tmp_path / "model.pt"))


def test_a_check_beyond_tolerance_fails_and_writes_nothing(
    checkpoint: Path, tmp_path: Path, export
) -> None:
    code, _, err = export(
        f"ckpt_path={checkpoint}",
        "format=torchscript",
        "output=model.pt",
        "tolerance=-1",
    )
    assert code == 1
    assert "more than tolerance=-1" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outputs"]


def test_bad_input_is_one_line_with_exit_2(checkpoint: Path, tmp_path: Path, export) -> None:
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    cases = [
        (("ckpt_path=missing.ckpt", "output=m.onnx"), "ckpt_path=missing.ckpt does not exist"),
        ((f"ckpt_path={foreign}", "output=m.onnx"), "is not a seglab checkpoint"),
        ((f"ckpt_path={checkpoint}", "output=m.x", "format=tflite"), "format=tflite is not one"),
        ((f"ckpt_path={checkpoint}",), "output is not set: give the file to write, e.g."),
    ]
    for args, message in cases:
        code, _, err = export(*args)
        assert code == 2, args
        assert err.startswith("seglab-export: error: ") and message in err, err
        assert len(err.strip().splitlines()) == 1


def test_onnx_without_onnxruntime_says_what_to_install(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, export
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now fails
    code, _, err = export(f"ckpt_path={checkpoint}", "output=m.onnx")
    assert code == 2
    assert "pip install 'seglab[export]'" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outputs"]
