"""Per-channel mean and standard deviation of a split's images (seglab.data.stats), against
numpy on hand-built images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny import folder_datamodule, save_pair

from seglab.data.stats import channel_statistics

tifffile = pytest.importorskip("tifffile")


def test_channel_statistics_pool_every_pixel_of_images_of_any_size() -> None:
    first = torch.tensor([[[0.0, 1.0]], [[2.0, 2.0]]])  # (2, 1, 2)
    second = torch.tensor([[[4.0]], [[5.0]]])  # (2, 1, 1)
    statistics = channel_statistics([first, second])
    # channel 0: 0, 1, 4 -> mean 5/3; channel 1: 2, 2, 5 -> mean 3 (pooled, not per image)
    assert statistics.mean == pytest.approx([5 / 3, 3.0])
    assert statistics.std == pytest.approx([np.std([0, 1, 4]), np.std([2, 2, 5])])
    assert (statistics.images, statistics.pixels) == (2, 3)
    assert statistics.overrides() == "data.mean=[1.66667,3] data.std=[1.69967,1.41421]"


def test_no_image_is_refused() -> None:
    with pytest.raises(ValueError, match="no image to compute data.mean and data.std"):
        channel_statistics([])


def _sixteen_bit_folder(root: Path) -> np.ndarray:
    """Three 4-band 16-bit TIFFs (two 8x8, one 6x10) in the train split; all their pixels as
    ``(pixels, 4)`` values scaled by 1/65535, as numpy sees them."""
    rng = np.random.default_rng(3)
    pixels = []
    for stem, (height, width) in (("a", (8, 8)), ("b", (8, 8)), ("c", (6, 10))):
        image = rng.integers(0, 65536, (height, width, 4), np.uint16)
        image[..., 2] //= 16  # a 12-bit band among them
        mask = np.zeros((height, width), np.uint8)
        mask[: height // 2] = 1
        save_pair(root, "train", stem, mask, mask)
        (root / "train" / "images" / f"{stem}.png").unlink()
        tifffile.imwrite(root / "train" / "images" / f"{stem}.tif", image)
        pixels.append(image.reshape(-1, 4).astype(np.float64) / 65535)
    return np.concatenate(pixels)


def test_mean_and_std_of_a_sixteen_bit_split_match_numpy(tmp_path: Path) -> None:
    expected = _sixteen_bit_folder(tmp_path / "scenes")
    datamodule = folder_datamodule(
        tmp_path / "scenes",
        in_channels=4,
        mean=[0.0] * 4,
        std=[1.0] * 4,
        augment={"color_jitter": None},
        loader={"batch_size": 1},
    )
    statistics = channel_statistics(datamodule.unnormalised_images("train"))
    np.testing.assert_allclose(statistics.mean, expected.mean(0), rtol=1e-6)
    np.testing.assert_allclose(statistics.std, expected.std(0), rtol=1e-6)
    assert statistics.images == 3 and statistics.pixels == 188


def test_data_stats_prints_and_writes_the_normalisation(tmp_path: Path, cli) -> None:
    import json

    from seglab.cli.data import main

    expected = _sixteen_bit_folder(tmp_path / "scenes")
    code, out, err = cli(
        main,
        "stats",
        "data=folder",
        f"data.root={tmp_path / 'scenes'}",
        # data.mean and data.std stay RGB's three values: the command computes them
        "data.in_channels=4",
        "data.augment.color_jitter=null",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"paths.output_root={tmp_path / 'runs'}",
        cwd=tmp_path,
    )
    assert code == 0, err[-3000:]
    (line,) = [line for line in out.splitlines() if "data.mean=" in line]
    mean = line.split("data.mean=[")[1].split("]")[0].split(",")
    np.testing.assert_allclose([float(value) for value in mean], expected.mean(0), rtol=1e-5)
    (run_dir,) = (tmp_path / "runs" / "data_stats").iterdir()
    written = json.loads((run_dir / "image_stats.json").read_text())
    assert written["in_channels"] == 4 and written["images"] == 3
    np.testing.assert_allclose(written["std"], expected.std(0), rtol=1e-6)
