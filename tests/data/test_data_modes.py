"""The masks of each task mode: synthetic binary and multilabel scenes, and binary and
multilabel mask folders read and checked at setup."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny import UNAUGMENTED, data_options, folder_datamodule, with_options

from seglab.data import DatasetError, FolderDataModule, SyntheticShapesDataModule

SMALL = {"image_size": 32, "num_train": 8, "num_val": 64, "num_test": 4, "max_shapes": 3}


def synthetic(option: str, mode: str, **overrides) -> SyntheticShapesDataModule:
    return SyntheticShapesDataModule(**{**data_options(option), **SMALL, "mode": mode, **overrides})


def val_masks(datamodule: SyntheticShapesDataModule) -> torch.Tensor:
    dataset = datamodule.dataset("val")
    return torch.stack([dataset[i][1] for i in range(len(dataset))])


def test_synthetic_binary_masks_are_the_multiclass_shapes_against_the_background() -> None:
    multiclass = val_masks(synthetic("synthetic", "multiclass"))
    binary = val_masks(synthetic("synthetic_binary", "binary"))
    assert binary.shape == multiclass.shape and binary.dtype == torch.int64
    assert torch.equal(binary, (multiclass > 0).long())
    assert 0 < binary.float().mean() < 1


def test_synthetic_multilabel_masks_hold_every_shape_a_pixel_lies_in() -> None:
    multiclass = val_masks(synthetic("synthetic", "multiclass"))
    multilabel = val_masks(synthetic("synthetic_multilabel", "multilabel"))
    assert multilabel.shape == (64, 3, 32, 32) and multilabel.dtype == torch.int64
    assert set(multilabel.unique().tolist()) == {0, 1}
    # the shape on top of a pixel (its multiclass label) is one of its classes ...
    for kind in (1, 2, 3):
        assert bool((multilabel[:, kind - 1][multiclass == kind] == 1).all())
    # ... the background has none, and shapes that overlap give a pixel several
    assert int(multilabel.sum(1)[multiclass == 0].max()) == 0
    assert int(multilabel.sum(1).max()) >= 2


def test_synthetic_multilabel_images_show_the_shape_under_another() -> None:
    """Translucent shapes: pixels with the same top shape differ where another lies below."""
    datamodule = synthetic("synthetic_multilabel", "multilabel", noise=0.0, max_shapes=2)
    dataset = datamodule.dataset("val")
    shown = 0
    for index in range(len(dataset)):
        image, mask, _ = dataset[index]
        both, single = mask.sum(0) == 2, mask.sum(0) == 1
        if both.any():
            # opaque shapes would give an overlap exactly the colour of the one on top
            colours = [
                {tuple(image[:, y, x].round(decimals=3).tolist()) for y, x in where.nonzero()}
                for where in (both, single)
            ]
            shown += not colours[0] & colours[1]
    assert shown > 0


def test_synthetic_data_with_the_class_count_of_another_mode_is_refused() -> None:
    with pytest.raises(ValueError, match=r"data\.num_classes=4 .* in mode=multilabel"):
        synthetic("synthetic", "multilabel")


# --- folders ------------------------------------------------------------------------------

CLASSES = ["cell", "nucleus"]


def write_image(root: Path, split: str, stem: str, height: int = 6, width: int = 8) -> None:
    (root / split / "images").mkdir(parents=True, exist_ok=True)
    pixels = np.full((height, width, 3), 40, np.uint8)
    Image.fromarray(pixels).save(root / split / "images" / f"{stem}.png")


def write_mask(root: Path, split: str, stem: str, mask: np.ndarray, folder: str = "") -> Path:
    path = root / split / "masks" / folder / f"{stem}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.astype(np.uint8)).save(path)
    return path


def class_masks(index: int) -> dict[str, np.ndarray]:
    cell = np.zeros((6, 8), np.uint8)
    cell[1:5, 1 + index : 7] = 255
    nucleus = np.zeros((6, 8), np.uint8)
    nucleus[2:4, 3:5] = 255
    nucleus[0, 0] = 7  # void
    return {"cell": cell, "nucleus": nucleus}


@pytest.fixture
def multilabel_root(tmp_path: Path) -> Path:
    root = tmp_path / "cells"
    for split, count in (("train", 3), ("val", 2)):
        for index in range(count):
            write_image(root, split, f"{split}{index}")
            for name, mask in class_masks(index).items():
                write_mask(root, split, f"{split}{index}", mask, name)
    return root


def folder(root: Path, mode: str, **options) -> FolderDataModule:
    """`tiny.folder_datamodule` on ``root`` in ``mode``, without augmentation."""
    plain = with_options({"mode": mode, "loader": {"eval_batch_size": None}}, **UNAUGMENTED)
    return folder_datamodule(root, **with_options(plain, **options))


def multilabel(root: Path, **options) -> FolderDataModule:
    values = {"classes": CLASSES, "mask_values": [0, 255], "ignore_index": 7, **options}
    return folder(root, "multilabel", **values)


def test_multilabel_folders_read_one_channel_per_class(multilabel_root: Path) -> None:
    datamodule = multilabel(multilabel_root)
    datamodule.setup("fit")
    _, mask, name = datamodule.dataset("val")[1]
    assert name == str(multilabel_root / "val" / "images" / "val1.png")
    expected = class_masks(1)
    assert mask.shape == (2, 6, 8) and mask.dtype == torch.int64
    assert torch.equal(mask[0], torch.from_numpy(expected["cell"] // 255).long())
    nucleus = torch.from_numpy(expected["nucleus"] // 255).long()
    nucleus[0, 0] = 7
    assert torch.equal(mask[1], nucleus)
    images, masks, _ = next(iter(datamodule.train_dataloader()))
    assert masks.shape == (2, 2, 6, 8)
    class_pixels, image_pixels = datamodule.class_pixel_counts("train")
    assert class_pixels.tolist() == [[24, 4], [20, 4], [16, 4]]
    assert image_pixels.tolist() == [48, 48, 48]


def test_a_bad_value_in_a_class_mask_is_named_with_its_file(multilabel_root: Path) -> None:
    bad = class_masks(0)["nucleus"]
    bad[5, 7] = 128
    path = write_mask(multilabel_root, "val", "val0", bad, "nucleus")
    with pytest.raises(DatasetError) as error:
        multilabel(multilabel_root).setup("validate")
    message = str(error.value)
    assert f"{path}: mask has values [128]" in message
    assert "data.mask_values=[0, 255]" in message


def test_a_missing_class_folder_is_named(multilabel_root: Path) -> None:
    with pytest.raises(DatasetError) as error:
        multilabel(multilabel_root, classes=["cell", "nucleus", "membrane"]).setup("fit")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(
        f"class mask folder {multilabel_root / 'train' / 'masks' / 'membrane'} of the train "
        "split does not exist"
    )


def test_an_image_without_a_mask_of_some_class_is_named(multilabel_root: Path) -> None:
    (multilabel_root / "val" / "masks" / "nucleus" / "val1.png").unlink()
    with pytest.raises(DatasetError) as error:
        multilabel(multilabel_root).setup("validate")
    # the class folder that lacks the mask, and the image it lacks it for
    folder = re.escape(str(multilabel_root / "val" / "masks" / "nucleus"))
    assert re.match(
        rf"1 image\(s\) without a mask <name>\.png in {folder}: .*val1\.png", str(error.value)
    )


def test_multilabel_mask_values_must_be_a_no_and_a_yes(multilabel_root: Path) -> None:
    with pytest.raises(ValueError, match=r"data\.mask_values=\[0, 1, 2\] must be the two raw"):
        multilabel(multilabel_root, mask_values=[0, 1, 2])


def test_binary_folders_read_foreground_and_name_a_bad_value(tmp_path: Path) -> None:
    root = tmp_path / "fg"
    mask = np.zeros((6, 8), np.uint8)
    mask[2:, :4] = 255
    for split in ("train", "val"):
        write_image(root, split, "a")
        write_mask(root, split, "a", mask)
    options = {"classes": ["background", "foreground"], "mask_values": [0, 255]}
    datamodule = folder(root, "binary", **options)
    datamodule.setup("fit")
    assert torch.equal(datamodule.dataset("val")[0][1], torch.from_numpy(mask // 255).long())
    mask[0, 0] = 1
    path = write_mask(root, "val", "a", mask)
    with pytest.raises(DatasetError, match=rf"{path}: mask has values \[1\]"):
        folder(root, "binary", **options).setup("validate")
