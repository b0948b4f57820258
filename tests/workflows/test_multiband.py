"""A 4-band 16-bit dataset end to end: seglab-train on it, then seglab.load and seglab-predict
on its TIFFs and on uint16 arrays, and its ONNX export (training, prediction, export and the
image reader together)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny import train_once

import seglab
from seglab.cli.export import main as export_main
from seglab.cli.predict import main as predict_main

tifffile = pytest.importorskip("tifffile")

BANDS = 4
MEAN, STD = [0.5, 0.4, 0.3, 0.2], [0.25, 0.2, 0.15, 0.1]
DATA = [
    "data=folder",
    f"data.in_channels={BANDS}",
    f"data.mean=[{','.join(map(str, MEAN))}]",
    f"data.std=[{','.join(map(str, STD))}]",
    "data.augment.color_jitter=null",
    "data.augment.scale_range=null",
    "data.augment.crop_size=[32,32]",
    "data.loader.batch_size=2",
    "data.loader.num_workers=0",
    f"model.encoder.in_channels={BANDS}",
    "model.encoder.widths=[8,16,32]",
    # one training batch, as fast_dev_run would, but with the checkpoints it does not write
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=1",
    "trainer.limit_val_batches=1",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]


def _scenes(root: Path) -> Path:
    """Four 32x32 train and two val scenes of 4 bands in 16 bits: class 1 where band 3 is
    bright (values above 255, which an 8-bit conversion would clip), 0 elsewhere."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("val", 2)):
        for folder in ("images", "masks"):
            (root / split / folder).mkdir(parents=True)
        for index in range(count):
            image = rng.integers(0, 20000, (32, 32, BANDS), np.uint16)
            mask = np.zeros((32, 32), np.uint8)
            top = 4 + 4 * index
            mask[top : top + 12, 6:20] = 1
            image[..., 3][mask == 1] += 40000
            tifffile.imwrite(root / split / "images" / f"{split}{index}.tif", image)
            Image.fromarray(mask).save(root / split / "masks" / f"{split}{index}.png")
    return root


@pytest.mark.slow
def test_four_band_sixteen_bit_dataset_trains_and_predicts(tmp_path: Path, cli) -> None:
    root = _scenes(tmp_path / "scenes")
    cache = f"paths.cache_dir={tmp_path / 'cache'}"
    run_dir = train_once(tmp_path / "runs", *DATA, f"data.root={root}", cache, cwd=tmp_path)
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    predictor = seglab.load(checkpoint)
    assert predictor.model.in_channels == BANDS
    path = root / "val" / "images" / "val0.tif"
    bands = tifffile.imread(path)
    mask = predictor(path)
    assert mask.shape == (32, 32) and mask.dtype == torch.int64
    # a file, its uint16 array and the float tensor scaled by hand predict alike
    assert torch.equal(predictor(bands), mask)
    scaled = torch.from_numpy(np.moveaxis(bands, -1, 0).astype(np.float32) / 65535)
    assert torch.equal(predictor(scaled), mask)
    normalised = (scaled - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
    with torch.no_grad():
        expected = predictor.model(normalised[None])[0].argmax(0)
    assert torch.equal(mask, expected)
    with pytest.raises(ValueError, match=r"expected an image shaped \(4, H, W\)"):
        predictor(bands[..., :3])

    output = tmp_path / "masks"
    code, _, err = cli(
        predict_main,
        f"ckpt_path={checkpoint}",
        f"input={root / 'val' / 'images'}",
        f"output={output}",
        "overlay=true",
        cwd=tmp_path,
    )
    assert code == 0, err[-3000:]
    written = np.asarray(Image.open(output / "val0.png"))
    assert np.array_equal(written, mask.numpy())
    assert (output / "val1_overlay.jpg").is_file()


@pytest.mark.slow  # an ONNX export takes 10-30 s on a small CPU
def test_four_band_model_exports_to_onnx_and_predicts_alike(tmp_path: Path, cli) -> None:
    pytest.importorskip("onnxruntime")
    root = _scenes(tmp_path / "scenes")
    cache = f"paths.cache_dir={tmp_path / 'cache'}"
    run_dir = train_once(tmp_path / "runs", *DATA, f"data.root={root}", cache, cwd=tmp_path)
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    code, _, err = cli(
        export_main,
        f"ckpt_path={checkpoint}",
        "output=m.onnx",
        f"paths.output_root={tmp_path / 'outputs'}",
        cwd=tmp_path,
    )
    assert code == 0, err[-3000:]
    path = root / "val" / "images" / "val1.tif"
    from_onnx = seglab.load(tmp_path / "m.onnx").probabilities(path)
    from_checkpoint = seglab.load(checkpoint).probabilities(path)
    torch.testing.assert_close(from_onnx, from_checkpoint, rtol=0, atol=1e-4)
