"""The label checks of the setup scan: each feeds the data a user has, and needs its check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny import folder_datamodule, portrait_folder, save_pair

from seglab.cli.train import main as train_main
from seglab.data import DatasetError


def write_split(root: Path, split: str, masks: list[np.ndarray]) -> None:
    """``masks`` (uint8) and grey images of their size in ``<root>/<split>/{images,masks}``."""
    for index, mask in enumerate(masks):
        save_pair(root, split, f"{split}{index}", mask * 40, mask)


def two_classes(void_rows: int = 0) -> np.ndarray:
    """A 10x10 mask: class 1 in the left half, class 0 in the right, ``void_rows`` rows of
    void (255) at the top."""
    mask = np.zeros((10, 10), np.uint8)
    mask[:, :5] = 1
    mask[:void_rows] = 255
    return mask


# --- a class stored as the void value -----------------------------------------------------


def test_0_255_masks_without_mask_values_are_refused_naming_them(tmp_path: Path) -> None:
    root = portrait_folder(tmp_path / "portraits")
    with pytest.raises(DatasetError) as error:
        folder_datamodule(root, splits={"val_fraction": 0.2}).setup("fit")
    message = str(error.value)
    assert "class 'foreground' has no pixel in the train split," in message
    assert "set data.mask_values=[0,255]" in message
    datamodule = folder_datamodule(root, splits={"val_fraction": 0.2}, mask_values=[0, 255])
    datamodule.setup("fit")
    _, mask, _ = datamodule.dataset("val")[0]
    assert set(mask.unique().tolist()) == {0, 1}, "the person is scored, not void"


def test_seglab_train_refuses_0_255_masks_in_one_line(tmp_path: Path, cli) -> None:
    root = portrait_folder(tmp_path / "portraits")
    args = ["data=folder", f"data.root={root}", "data.splits.val_fraction=0.2"]
    code, _, err = cli(train_main, *args, f"paths.output_root={tmp_path}", cwd=tmp_path)
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith("seglab-train: error: class 'foreground' has no pixel"), line
    assert line.endswith("set data.mask_values=[0,255]"), line


def test_multilabel_0_255_masks_without_mask_values_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "cells"
    for split in ("train", "val"):
        (root / split / "images").mkdir(parents=True)
        Image.new("RGB", (10, 10)).save(root / split / "images" / "a.png")
        for name in ("nucleus", "membrane"):
            (root / split / "masks" / name).mkdir(parents=True)
            Image.fromarray(two_classes() * 255).save(root / split / "masks" / name / "a.png")
    options = {"mode": "multilabel", "classes": ["nucleus", "membrane"]}
    with pytest.raises(DatasetError, match=r"set data\.mask_values=\[0,255\]"):
        folder_datamodule(root, **options).setup("fit")
    folder_datamodule(root, **options, mask_values=[0, 255]).setup("fit")


# --- a class with no pixel ----------------------------------------------------------------


def test_a_class_absent_from_train_and_val_is_refused_naming_it(tmp_path: Path) -> None:
    root = tmp_path / "pets"
    write_split(root, "train", [two_classes()] * 2)
    write_split(root, "val", [two_classes()])
    classes = ["background", "cat", "dog"]
    with pytest.raises(DatasetError, match=r"class 'dog' has no pixel in the train and val splits"):
        folder_datamodule(root, classes=classes).setup("fit")
    with pytest.raises(DatasetError, match="data.allow_absent_classes=true"):
        folder_datamodule(root, classes=classes).setup("fit")
    folder_datamodule(root, classes=classes, allow_absent_classes=True).setup("fit")


def test_a_class_only_one_split_has_passes(tmp_path: Path) -> None:
    root = tmp_path / "pets"
    write_split(root, "train", [two_classes()])
    write_split(root, "val", [np.where(two_classes() == 1, 2, 0).astype(np.uint8)])
    folder_datamodule(root, classes=["background", "cat", "dog"]).setup("fit")


# --- void-heavy splits --------------------------------------------------------------------


def test_a_split_mostly_void_is_refused_naming_it_and_the_share(tmp_path: Path) -> None:
    root = tmp_path / "cells"
    write_split(root, "train", [two_classes(void_rows=2)] * 2)
    write_split(root, "val", [two_classes(void_rows=7)])
    message = r"70% of the pixels of the val split are void .*data\.allow_void_heavy=true"
    with pytest.raises(DatasetError, match=message):
        folder_datamodule(root).setup("fit")
    folder_datamodule(root, allow_void_heavy=True).setup("fit")


def test_a_void_heavy_test_split_is_refused_when_it_is_scored(tmp_path: Path) -> None:
    root = tmp_path / "cells"
    write_split(root, "train", [two_classes()])
    write_split(root, "val", [two_classes()])
    write_split(root, "test", [two_classes(void_rows=6)])
    datamodule = folder_datamodule(root)
    datamodule.setup("fit")
    with pytest.raises(DatasetError, match="60% of the pixels of the test split are void"):
        datamodule.setup("test")


def test_seglab_sparse_labels_pass_the_void_check(tmp_path: Path) -> None:
    root = tmp_path / "cells"
    mask = np.zeros((24, 24), np.uint8)
    mask[4:20, 4:12] = 1
    write_split(root, "train", [mask] * 2)
    write_split(root, "val", [mask])
    datamodule = folder_datamodule(root, few_labels={"sparse_labels": "points"})
    datamodule.setup("fit")
    _, sparse, _ = datamodule.dataset("train")[0]
    assert (sparse == 255).float().mean() > 0.9, "the training masks are points"
