"""Reading image files: the 8-bit path, 16-bit PNGs, multi-band and float TIFFs, scaling and
band-count refusals (seglab.data.images)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny import folder_datamodule, save_pair

from seglab.data import DatasetError
from seglab.data.images import ImageReader
from seglab.extras import MissingExtraError
from seglab.inference.predictor import read_image

tifffile = pytest.importorskip("tifffile")


def _bands(height: int = 6, width: int = 5, bands: int = 4, seed: int = 0) -> np.ndarray:
    """``(H, W, bands)`` uint16 values spread over the whole 16-bit range."""
    return np.random.default_rng(seed).integers(0, 65536, (height, width, bands), np.uint16)


def test_eight_bit_rgb_stays_uint8_as_pillow_converts_it(tmp_path: Path) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (6, 5, 3), np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    image = ImageReader(3)(tmp_path / "a.png")
    assert image.dtype == torch.uint8
    assert torch.equal(image, torch.from_numpy(pixels).permute(2, 0, 1))


def test_sixteen_bit_png_keeps_values_above_255(tmp_path: Path) -> None:
    values = np.array([[0, 255, 256, 1000], [4095, 30000, 65534, 65535]], np.uint16)
    Image.fromarray(values).save(tmp_path / "depth.png")
    image = ImageReader(1)(tmp_path / "depth.png")
    assert image.shape == (1, 2, 4) and image.dtype == torch.float32
    # divided by 65535, no value clipped at 255
    expected = torch.tensor(values.astype(np.float64) / 65535, dtype=torch.float32)
    torch.testing.assert_close(image[0], expected, rtol=0, atol=1e-7)
    assert image[0, 0, 2] > image[0, 0, 1]


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.int32])
def test_a_tensor_image_is_scaled_as_the_reader_scales_its_type(dtype: torch.dtype) -> None:
    """seglab.load's tensors and the datamodules' files share one rule: a 32-bit integer
    image is a 16-bit one as Pillow opens it (mode "I"), divided by 65535."""
    largest = {torch.uint8: 255, torch.int16: 32767, torch.int32: 65535}[dtype]
    pixels = torch.tensor([[[0, largest // 2, largest]]], dtype=dtype)
    torch.testing.assert_close(read_image(pixels, channels=1)[0, 0], pixels[0, 0] / largest)
    torch.testing.assert_close(
        read_image(pixels, channels=1, max_value=largest * 2)[0, 0], pixels[0, 0] / (largest * 2)
    )


def test_max_value_scales_twelve_bit_data(tmp_path: Path) -> None:
    values = np.array([[0, 1024, 4095]], np.uint16)
    Image.fromarray(values).save(tmp_path / "twelve.png")
    image = ImageReader(1, max_value=4095)(tmp_path / "twelve.png")
    torch.testing.assert_close(image[0, 0], torch.tensor([0.0, 1024 / 4095, 1.0]))


def test_sixteen_bit_grayscale_is_replicated_for_rgb(tmp_path: Path) -> None:
    values = np.array([[300, 60000]], np.uint16)
    Image.fromarray(values).save(tmp_path / "grey.png")
    image = ImageReader(3)(tmp_path / "grey.png")
    expected = torch.tensor([300 / 65535, 60000 / 65535])
    for band in image:
        torch.testing.assert_close(band[0], expected)


@pytest.mark.parametrize("planar", [False, True])
def test_multi_band_tiff_reads_every_band(tmp_path: Path, planar: bool) -> None:
    bands = _bands()
    path = tmp_path / "scene.tif"
    if planar:
        planes = np.moveaxis(bands, -1, 0)
        tifffile.imwrite(path, planes, photometric="minisblack", planarconfig="separate")
    else:
        tifffile.imwrite(path, bands)
    image = ImageReader(4)(path)
    expected = torch.from_numpy(np.moveaxis(bands, -1, 0).astype(np.float64) / 65535).float()
    torch.testing.assert_close(image, expected, rtol=0, atol=1e-7)
    assert ImageReader(4).size(path) == (5, 6)


def test_sixteen_bit_rgb_tiff_is_not_cut_to_eight_bits(tmp_path: Path) -> None:
    bands = _bands(bands=3)
    tifffile.imwrite(tmp_path / "rgb16.tif", bands, photometric="rgb")
    image = ImageReader(3)(tmp_path / "rgb16.tif")
    torch.testing.assert_close(image[:, 0, 0], torch.from_numpy(bands[0, 0] / 65535).float())


def test_float_tiff_is_used_as_it_is(tmp_path: Path) -> None:
    values = np.array([[-1.5, 0.25, 3.0], [1e4, 0.0, 7.0]], np.float32)
    values = np.stack([values, -values], axis=-1)  # (2, 3, 2): two bands
    tifffile.imwrite(
        tmp_path / "reflectance.tif", values, photometric="minisblack", planarconfig="contig"
    )
    image = ImageReader(2, max_value=100)(tmp_path / "reflectance.tif")
    assert torch.equal(image, torch.from_numpy(np.moveaxis(values, -1, 0)))


def test_sixteen_bit_colour_png_is_refused_naming_the_file(tmp_path: Path) -> None:
    # Pillow would read only the high byte of each value of a 48-bit PNG
    path = tmp_path / "colour16.png"
    path.write_bytes(_png48())
    with pytest.raises(DatasetError, match=r"colour16\.png: .*save it as a TIFF"):
        ImageReader(3)(path)


def _png48() -> bytes:
    """A 1x1 PNG of 16 bits per channel, RGB, written by hand (Pillow does not write them)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 16, 2, 0, 0, 0)
    row = b"\x00" + struct.pack(">HHH", 1000, 40000, 65535)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row))
        + chunk(b"IEND", b"")
    )


def test_max_value_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"data\.max_value=0 must be positive"):
        ImageReader(4, max_value=0)


def test_tiff_without_tifffile_names_the_extra(tmp_path: Path, monkeypatch) -> None:
    tifffile.imwrite(tmp_path / "scene.tif", _bands())
    monkeypatch.setitem(__import__("sys").modules, "tifffile", None)
    with pytest.raises(MissingExtraError, match=r"scene\.tif.*pip install 'seglab\[tiff\]'"):
        ImageReader(4)(tmp_path / "scene.tif")


def _four_band_folder(root: Path, bands: dict[str, int]) -> Path:
    """Two 8x8 train images of ``bands[stem]`` 16-bit bands (4 unless named) and their masks."""
    mask = np.zeros((8, 8), np.uint8)
    mask[4:] = 1
    for index, stem in enumerate(("a", "b")):
        save_pair(root, "train", stem, np.zeros((8, 8), np.uint8), mask)
        (root / "train" / "images" / f"{stem}.png").unlink()
        image = _bands(8, 8, bands.get(stem, 4), seed=index)
        tifffile.imwrite(root / "train" / "images" / f"{stem}.tif", image)
    return root


def test_band_count_other_than_in_channels_is_refused_at_setup(tmp_path: Path) -> None:
    root = _four_band_folder(tmp_path / "scenes", {"b": 3})
    datamodule = folder_datamodule(
        root, in_channels=4, mean=[0.5] * 4, std=[0.25] * 4, augment={"color_jitter": None}
    )
    with pytest.raises(
        DatasetError, match=r"b\.tif: the image has 3 band\(s\) but data\.in_channels=4; set data"
    ):
        datamodule.dataset("train")


def test_colour_jitter_is_refused_for_other_band_counts(tmp_path: Path) -> None:
    root = _four_band_folder(tmp_path / "scenes", {})
    with pytest.raises(ValueError, match=r"data\.augment\.color_jitter=.*set data\.augment\.color"):
        folder_datamodule(root, in_channels=4, mean=[0.5] * 4, std=[0.25] * 4)


def test_a_cached_scan_does_not_hide_another_band_count(tmp_path: Path) -> None:
    root = _four_band_folder(tmp_path / "scenes", {})
    options = {"augment": {"color_jitter": None}, "cache_dir": tmp_path / "cache"}
    folder_datamodule(root, in_channels=4, mean=[0.5] * 4, std=[0.25] * 4, **options).dataset(
        "train"
    )
    with pytest.raises(DatasetError, match=r"a\.tif: the image has 4 band\(s\) but data\.in_c"):
        folder_datamodule(root, in_channels=3, **options).dataset("train")
