"""Mask decoding traps: a JPEG mask, classes numbered from 1, RGB masks; each error says what
to set, and a grayscale mask saved as RGB reads as the grayscale values it holds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny import folder_datamodule, portrait_folder, with_options

from seglab.data import DatasetError, FolderDataModule, MaskDecoder


def portraits(root: Path, **options) -> FolderDataModule:
    """The portrait folder's datamodule, read as a user who set the val share would."""
    return folder_datamodule(root, **with_options({"splits": {"val_fraction": 0.2}}, **options))


def test_jpeg_masks_are_found_and_refused_naming_png(tmp_path: Path) -> None:
    root = portrait_folder(tmp_path / "portraits", mask_format="JPEG")
    hint = r"p000\.jpg.*holds them as \.jpg: set data\.layout\.mask_extension=\.jpg"
    with pytest.raises(DatasetError, match=hint):
        portraits(root, mask_values=[0, 255]).setup("fit")
    lossy = r"p000\.jpg: mask is a JPEG file, .*: mask has values \[.*\] that are neither"
    with pytest.raises(DatasetError, match=lossy + r".*save masks as PNG"):
        portraits(root, mask_values=[0, 255], layout={"mask_extension": ".jpg"}).setup("fit")


def test_a_jpeg_mask_is_refused_even_where_its_values_are_classes(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "mask.jpg", quality=100)
    with pytest.raises(DatasetError, match=r"mask\.jpg: mask is a JPEG file.*save masks as PNG"):
        MaskDecoder(2, 255)(tmp_path / "mask.jpg")


def test_masks_numbered_from_1_name_the_mask_values_that_read_them(tmp_path: Path) -> None:
    mask = np.array([[1, 1, 2], [2, 3, 3]], np.uint8)
    Image.fromarray(mask).save(tmp_path / "mask.png")
    message = r"values \[3\] .* number the classes from 1 need data\.mask_values=\[1,2,3\]"
    with pytest.raises(DatasetError, match=message):
        MaskDecoder(3, 255)(tmp_path / "mask.png")
    expected = mask.astype(np.int64) - 1
    assert np.array_equal(
        MaskDecoder(3, 255, mask_values=[1, 2, 3])(tmp_path / "mask.png"), expected
    )


def test_0_255_masks_with_another_void_value_name_the_mask_values(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 255]], np.uint8)).save(tmp_path / "mask.png")
    with pytest.raises(DatasetError, match=r"set data\.mask_values=\[0,255\]"):
        MaskDecoder(2, -100)(tmp_path / "mask.png")


def test_a_grayscale_mask_saved_as_rgb_reads_its_values(tmp_path: Path) -> None:
    grey = np.array([[0, 255], [255, 0]], np.uint8)
    Image.fromarray(np.stack([grey] * 3, -1)).save(tmp_path / "mask.png")
    decoded = MaskDecoder(2, 100, mask_values=[0, 255])(tmp_path / "mask.png")
    assert decoded.tolist() == [[0, 1], [1, 0]]


def test_a_colour_mask_without_palette_lists_its_colours(tmp_path: Path) -> None:
    colours = np.zeros((2, 2, 3), np.uint8)
    colours[0] = (255, 0, 0)
    Image.fromarray(colours).save(tmp_path / "mask.png")
    message = r"colours \[\[0, 0, 0\], \[255, 0, 0\]\] but data\.palette is not set"
    with pytest.raises(DatasetError, match=message):
        MaskDecoder(2, 255)(tmp_path / "mask.png")
