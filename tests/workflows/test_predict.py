"""seglab.load, seglab-predict and sliding evaluation, from a checkpoint built by hand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import DictConfig, open_dict
from PIL import Image
from tiny import save_checkpoint

import seglab
from seglab.cli.predict import main as predict_main
from seglab.config.spec import resolve_spec
from seglab.errors import SeglabError
from seglab.workflows.build import build_datamodule, build_model, build_task

ROOT = Path(__file__).resolve().parents[2]
TINY_MODEL = ["model.encoder.widths=[8,16,32]"]


def _config(compose, tmp_path: Path, *overrides: str) -> DictConfig:
    return compose("train", f"paths.output_dir={tmp_path}", *TINY_MODEL, *overrides)


@pytest.fixture(scope="module")
def checkpoint(compose, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny default model (synthetic data, 4 classes) saved as seglab-train saves it."""
    folder = tmp_path_factory.mktemp("ckpt")
    cfg = _config(compose, folder)
    torch.manual_seed(0)
    model = build_model(resolve_spec(cfg))
    path = folder / "tiny.ckpt"
    return save_checkpoint(model, cfg, path)


def _image(height: int = 30, width: int = 45) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width, 3)).astype(np.uint8)


def test_predictor_accepts_every_image_type_at_its_own_size(
    checkpoint: Path, tmp_path: Path
) -> None:
    predictor = seglab.load(checkpoint)
    assert not predictor.model.training
    pixels = _image()
    Image.fromarray(pixels).save(tmp_path / "a.png")
    tensor = torch.from_numpy(pixels).permute(2, 0, 1)
    masks = [
        predictor(tmp_path / "a.png"),
        predictor(str(tmp_path / "a.png")),
        predictor(Image.fromarray(pixels)),
        predictor(pixels),
        predictor(tensor),
        predictor(tensor.float() / 255),
    ]
    for mask in masks:
        assert mask.shape == (30, 45) and mask.dtype == torch.int64
        assert torch.equal(mask, masks[0])
    probabilities = predictor.probabilities(pixels)
    assert probabilities.shape == (4, 30, 45)
    torch.testing.assert_close(probabilities.sum(dim=0), torch.ones(30, 45))
    assert torch.equal(probabilities.argmax(dim=0), masks[0])


def test_predictor_normalises_with_the_checkpoint_data_config(checkpoint: Path) -> None:
    predictor = seglab.load(checkpoint)
    pixels = _image()
    image = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255
    normalised = (image - 0.5) / 0.25  # conf/data/synthetic.yaml
    with torch.no_grad():
        expected = predictor.model(normalised[None])[0].argmax(dim=0)
    assert torch.equal(predictor(pixels), expected)


def test_predictor_scales_integer_images_by_the_checkpoint_max_value(
    compose, tmp_path: Path
) -> None:
    cfg = _config(compose, tmp_path)
    with open_dict(cfg):
        cfg.data.max_value = 4095  # 12-bit data in 16-bit files
    torch.manual_seed(0)
    predictor = seglab.load(save_checkpoint(build_model(resolve_spec(cfg)), cfg, tmp_path / "c"))
    twelve_bit = np.random.default_rng(0).integers(0, 4096, (30, 45, 3)).astype(np.uint16)
    scaled = torch.from_numpy(twelve_bit).permute(2, 0, 1).float()
    probabilities = predictor.probabilities(twelve_bit)
    torch.testing.assert_close(probabilities, predictor.probabilities(scaled / 4095))
    assert not torch.allclose(probabilities, predictor.probabilities(scaled / 65535))


def test_sliding_predictor_keeps_the_image_size(checkpoint: Path) -> None:
    predictor = seglab.load(
        checkpoint, tile=16, overlap=0.5, tta={"hflip": True, "scales": [0.75, 1.0]}
    )
    assert predictor(_image(37, 50)).shape == (37, 50)


def test_predictor_rejects_a_wrong_array_naming_its_shape(checkpoint: Path) -> None:
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        seglab.load(checkpoint)(torch.zeros(4, 8, 8))


def test_predict_writes_palette_masks_and_lists_unreadable_files(
    checkpoint: Path, tmp_path: Path, cli
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(_image(30, 45)).save(images / "a.png")
    Image.fromarray(_image(20, 24)).save(images / "b.jpg")
    (images / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    code, _, err = cli(
        predict_main,
        f"ckpt_path={checkpoint}",
        f"input={images}",
        f"output={out}",
        "overlay=true",
        "save_probs=true",
        "inference.tile=16",
        "device=cpu",
        cwd=tmp_path,
    )
    assert code == 1
    assert "broken.png" in err and "a.png" not in err
    with Image.open(out / "a.png") as mask:
        assert mask.mode == "P" and mask.size == (45, 30)
        palette = mask.getpalette()[:12]
    assert palette == [0, 0, 0, 230, 25, 75, 60, 180, 75, 0, 130, 200]
    with Image.open(out / "b.png") as mask:
        assert mask.size == (24, 20)
    with Image.open(out / "a_overlay.jpg") as overlay:
        assert overlay.size == (45, 30)
    probabilities = np.load(out / "a_probs.npy")
    assert probabilities.shape == (4, 30, 45)
    np.testing.assert_allclose(probabilities.sum(axis=0), 1, atol=1e-2)
    assert not (out / "broken.png").exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["ckpt_path=missing.ckpt", "input=a.png"], "ckpt_path=missing.ckpt does not exist"),
        (["ckpt_path={ckpt}", "input=nothing/*.png"], "input=nothing/*.png is no file"),
    ],
)
def test_predict_reports_a_bad_path_in_one_line(
    checkpoint: Path, tmp_path: Path, cli, arguments: list[str], message: str
) -> None:
    Image.fromarray(_image()).save(tmp_path / "a.png")
    arguments = [arg.format(ckpt=checkpoint) for arg in arguments]
    arguments.append(f"output={tmp_path / 'out'}")
    code, _, err = cli(predict_main, *arguments, cwd=tmp_path)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_evaluation_runs_through_the_configured_sliding_window(compose, tmp_path: Path) -> None:
    cfg = _config(compose, tmp_path, "data.num_train=8", "data.num_val=4", "inference.tile=16")
    datamodule = build_datamodule(resolve_spec(cfg))
    datamodule.setup("validate")
    task = build_task(resolve_spec(cfg), datamodule)
    assert task.inferer is not None and task.inferer.model is task.model
    calls = []
    logits = task.inferer.logits
    task.inferer.logits = lambda images: calls.append(images.shape) or logits(images)
    task.eval()
    task._evaluation_step("val", next(iter(datamodule.val_dataloader())))
    assert calls == [(4, 3, 32, 32)]
    assert build_task(resolve_spec(_config(compose, tmp_path)), datamodule).inferer.tile is None


@pytest.mark.slow  # a fresh interpreter predicts a 600x900 image tile by tile
def test_peak_memory_script_on_a_moderate_image() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "benchmarks" / "predict_memory.py"),
            "--height=600",
            "--width=900",
            "--tile=256",
            "--model",
            *TINY_MODEL,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "mask: 600x900 mode P" in result.stdout


def test_load_refuses_an_unknown_inference_option_naming_the_options(checkpoint: Path) -> None:
    with pytest.raises(
        SeglabError,
        match=r"tiles is not an inference option; use tile, overlap, "
        r"blend, tile_batch_size or tta",
    ):
        seglab.load(checkpoint, tiles=16)
