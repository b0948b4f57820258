"""Sparse training labels: points and scribbles per region, picked the same way every time, and
a datamodule that trains on them while val and test keep full masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage
from tiny import UNAUGMENTED, binary_folder, data_options, save_pair, with_options

from seglab.data import SyntheticShapesDataModule
from seglab.data.sparse import sparse_mask

VOID = 255


def three_regions() -> np.ndarray:
    """Background around two separate class-1 squares (3x3 and 9x9) and a class-2 bar."""
    mask = np.zeros((16, 20), np.int64)
    mask[1:4, 1:4] = 1
    mask[5:14, 8:17] = 1
    mask[15, :] = 2
    return mask


def test_points_keep_k_pixels_of_every_region_with_their_class() -> None:
    mask = three_regions()
    sparse = sparse_mask(mask, "points", 3, seed=0, name="a", num_classes=3, ignore_index=VOID)
    for cls, sizes in ((0, [3]), (1, [3, 3]), (2, [3])):
        regions, count = ndimage.label(mask == cls, structure=np.ones((3, 3)))
        kept = [int((sparse[regions == r] == cls).sum()) for r in range(1, count + 1)]
        assert kept == sizes, cls
    assert (sparse != VOID).sum() == 12, "nothing else is labelled"
    again = sparse_mask(mask, "points", 3, seed=0, name="a", num_classes=3, ignore_index=VOID)
    other = sparse_mask(mask, "points", 3, seed=0, name="b", num_classes=3, ignore_index=VOID)
    assert np.array_equal(sparse, again) and not np.array_equal(sparse, other)
    # a region smaller than k keeps all of its pixels
    tiny = sparse_mask(mask, "points", 20, seed=0, name="a", num_classes=3, ignore_index=VOID)
    assert (tiny[1:4, 1:4] == 1).all()


def test_scribbles_run_along_each_region_inside_it() -> None:
    mask = three_regions()
    sparse = sparse_mask(mask, "scribbles", 1, seed=0, name="a", num_classes=3, ignore_index=VOID)
    kept = sparse != VOID
    assert np.array_equal(sparse[kept], mask[kept]), "every scribble pixel keeps its class"
    assert sparse[9, 12] == 1, "the centre of the 9x9 square is on its medial axis"
    assert (sparse[5:14, 8:17] == 1).sum() < 81 // 3, "a thin line, not the region"
    assert (sparse[15] == 2).any() and (sparse[1:4, 1:4] == 1).any()


def test_training_masks_are_sparse_and_evaluation_masks_full(tmp_path: Path) -> None:
    values = {**data_options("synthetic"), "num_train": 6, "num_val": 3, "num_test": 2}
    values = with_options(values, few_labels={"sparse_labels": "points", "sparse_points": 2})
    datamodule = SyntheticShapesDataModule(**values)
    full = SyntheticShapesDataModule(**with_options(values, few_labels={"sparse_labels": None}))
    train, full_train = datamodule.dataset("train"), full.dataset("train")
    for index in range(len(train)):
        mask, whole = train[index][1], full_train[index][1]
        labelled = mask != datamodule.ignore_index
        assert 0 < int(labelled.sum()) <= 2 * 8
        assert torch.equal(mask[labelled], whole[labelled])
    assert torch.equal(datamodule.dataset("val").masks, full.dataset("val").masks)
    rebuilt = SyntheticShapesDataModule(**values).dataset("train")
    assert torch.equal(rebuilt.masks, train.masks)
    with pytest.raises(
        ValueError, match="^data.few_labels.sparse_labels=lines is not one of: points"
    ):
        SyntheticShapesDataModule(**with_options(values, few_labels={"sparse_labels": "lines"}))


def test_a_folder_sparsifies_each_mask_file_before_the_random_transform(tmp_path: Path) -> None:
    root = tmp_path / "cells"
    for split in ("train", "val"):
        for index in range(2):
            mask = np.zeros((12, 12), np.uint8)
            mask[2:9, 3:10] = 255
            save_pair(root, split, f"{split}{index}", np.stack([mask] * 3, -1), mask)
    values = with_options(UNAUGMENTED, few_labels={"sparse_labels": "points", "sparse_points": 4})
    datamodule = binary_folder(root, **values)
    for index, (_, mask, name) in enumerate(datamodule.dataset("train")):
        assert (mask == 1).sum() == 4 and (mask == 0).sum() == 4, name
        assert Path(name).stem == f"train{index}"
    again = binary_folder(root, **values).dataset("train")
    assert torch.equal(again[0][1], datamodule.dataset("train")[0][1])
    val_mask = datamodule.dataset("val")[0][1]
    assert (val_mask == 1).sum() == 49, "val keeps the full mask"
