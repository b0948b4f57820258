"""Learning from few labels, data side: the seeded labelled subset, the unlabelled images beside
it, its record in the run directory, and the one-line refusals of bad settings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny import TINY, data_options, quick_first, refused_before_training, with_options

from seglab.data import FolderDataModule, SyntheticShapesDataModule
from seglab.data.splits import split_labeled

NUM_TRAIN = 20


def synthetic(tmp_path: Path, **options) -> SyntheticShapesDataModule:
    """The synthetic datamodule recording its labelled subset in ``tmp_path``; ``options``
    replace any of the values (`tiny.with_options`)."""
    values = {**data_options("synthetic"), "num_train": NUM_TRAIN, "num_val": 4, "num_test": 4}
    values = with_options(values, loader={"batch_size": 2})
    values = with_options(values, few_labels={"labeled_record": tmp_path / "labeled.json"})
    return SyntheticShapesDataModule(**with_options(values, **options))


def write_images(folder: Path, count: int, size: int = 32) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        pixels = np.full((size, size, 3), 40 * index, np.uint8)
        Image.fromarray(pixels).save(folder / f"extra-{index}.png")
    return folder


def test_the_subset_repeats_for_a_seed_and_is_disjoint_from_the_unlabelled(tmp_path) -> None:
    first = (
        synthetic(tmp_path, few_labels={"labeled_fraction": 0.3, "labeled_seed": 5})
        .split_plan()
        .labeled
    )
    again = (
        synthetic(tmp_path, few_labels={"labeled_fraction": 0.3, "labeled_seed": 5})
        .split_plan()
        .labeled
    )
    other = (
        synthetic(tmp_path, few_labels={"labeled_fraction": 0.3, "labeled_seed": 6})
        .split_plan()
        .labeled
    )
    assert first == again
    assert first.labeled != other.labeled
    assert len(first.labeled) == 6 and len(first.unlabeled) == 14
    assert not set(first.labeled) & set(first.unlabeled)
    assert sorted(first.labeled + first.unlabeled) == list(range(NUM_TRAIN))
    assert (
        len(synthetic(tmp_path, few_labels={"labeled_count": 3}).split_plan().labeled.labeled) == 3
    )


def test_the_subset_follows_the_names_not_their_order() -> None:
    names = [f"image-{index}" for index in range(30)]
    forward = split_labeled(names, range(30), 0.2, None, seed=1)
    shuffled = list(reversed(names))
    backward = split_labeled(shuffled, range(30), 0.2, None, seed=1)
    assert {names[i] for i in forward.labeled} == {shuffled[i] for i in backward.labeled}
    # 0.29 * 100 is 28.999999999999996: still 29 labelled
    assert len(split_labeled(names * 4, range(100), 0.29, None, seed=0).labeled) == 29


def test_training_reads_the_labelled_subset_and_the_rest_is_unlabelled(tmp_path) -> None:
    datamodule = synthetic(tmp_path, few_labels={"labeled_fraction": 0.25})
    datamodule.setup("fit")
    subset = datamodule.split_plan().labeled
    train = datamodule.dataset("train")
    whole = datamodule._whole_split("train")
    assert [train[i][2] for i in range(len(train))] == [whole[i][2] for i in subset.labeled]
    unlabeled = datamodule.unlabeled_dataset()
    assert [unlabeled[i][2] for i in range(len(unlabeled))] == [
        whole[i][2] for i in subset.unlabeled
    ]
    record = json.loads((tmp_path / "labeled.json").read_text())
    assert record["labeled"] == [f"synthetic train sample {i}" for i in subset.labeled]
    assert record["unlabeled"] == [f"synthetic train sample {i}" for i in subset.unlabeled]
    assert record["labeled_fraction"] == 0.25 and record["labeled_seed"] == 0
    # every training step draws a labelled and an unlabelled batch
    datamodule.pair_unlabeled(3, "max_size_cycle")
    batch, _, _ = next(iter(datamodule.train_dataloader()))
    assert batch["labeled"][0].shape[0] == 2 and batch["unlabeled"][0].shape[0] == 3


def test_a_cross_validation_run_labels_a_subset_of_its_training_folds(tmp_path) -> None:
    datamodule = synthetic(
        tmp_path,
        few_labels={"labeled_fraction": 0.5},
        splits={"folds": 4, "fold": 1, "folds_record": None},
    )
    folds = datamodule.split_plan().validation
    subset = datamodule.split_plan().labeled
    assert sorted(subset.labeled + subset.unlabeled) == folds.train
    assert not set(subset.labeled) & set(folds.val)


def test_a_folder_records_stems_and_unlabeled_dir_adds_void_masked_images(tmp_path) -> None:
    root = tmp_path / "cells"
    for split in ("train", "val"):
        images, masks = write_images(root / split / "images", 4), root / split / "masks"
        masks.mkdir(parents=True)
        for path in images.iterdir():
            mask = np.zeros((32, 32), np.uint8)
            mask[:8] = 1  # both classes present, as the setup checks require
            Image.fromarray(mask).save(masks / path.name)
    extra = write_images(tmp_path / "extra" / "more", 3)
    values = with_options(
        data_options("folder"),
        root=root,
        cache_dir=None,
        loader={"num_workers": 0},
        augment={"crop_size": [16, 16]},
        few_labels={
            "labeled_record": tmp_path / "labeled.json",
            "labeled_count": 1,
            "unlabeled_dir": str(tmp_path / "extra" / "*" / "*.png"),
        },
    )
    datamodule = FolderDataModule(**values)
    datamodule.setup("fit")
    record = json.loads((tmp_path / "labeled.json").read_text())
    assert len(record["labeled"]) == 1 and len(record["unlabeled"]) == 3
    assert set(record["labeled"] + record["unlabeled"]) == {f"extra-{i}" for i in range(4)}
    unlabeled = datamodule.unlabeled_dataset()
    assert len(unlabeled) == 3 + 3
    image, mask, name = unlabeled[5]
    assert Path(name).parent == extra and image.shape == (3, 16, 16)
    assert (mask == datamodule.ignore_index).all(), "an image without a mask is all void"


BAD_LABELS = {
    "fraction zero": (
        ["data.few_labels.labeled_fraction=0"],
        "data.few_labels.labeled_fraction=0.0 must be in (0, 1]",
    ),
    "fraction above one": (
        ["data.few_labels.labeled_fraction=1.5"],
        "data.few_labels.labeled_fraction=1.5 must be in (0, 1]",
    ),
    "fraction leaving none": (
        ["data.few_labels.labeled_fraction=0.01"],
        "data.few_labels.labeled_fraction=0.01 of the 32 training samples leaves no labelled image",
    ),
    "count above the split": (
        ["data.few_labels.labeled_count=40"],
        "data.few_labels.labeled_count=40 exceeds the 32 training samples",
    ),
    "fraction and count": (
        ["data.few_labels.labeled_fraction=0.5", "data.few_labels.labeled_count=4"],
        "data.few_labels.labeled_fraction=0.5 and data.few_labels.labeled_count=4 both choose",
    ),
    "missing unlabeled_dir": (
        ["data.few_labels.unlabeled_dir=/no/such/folder"],
        "data.few_labels.unlabeled_dir=/no/such/folder is neither a folder nor a glob pattern",
    ),
    "semi-supervised without unlabelled images": (
        ["method=fixmatch"],
        "method=fixmatch learns from unlabelled images, but this run has none",
    ),
    "every sample labelled": (
        ["method=mean_teacher", "data.few_labels.labeled_fraction=1"],
        "method=mean_teacher learns from unlabelled images, but this run has none",
    ),
}


@pytest.mark.parametrize("case", quick_first(BAD_LABELS))
def test_bad_label_settings_stop_the_run_in_one_line_before_training(
    case: str, tmp_path: Path, cli
) -> None:
    overrides, message = BAD_LABELS[case]
    run_dir = refused_before_training(cli, tmp_path, *TINY, *overrides, message=message)
    assert not list(run_dir.glob("events.out.*"))


def test_an_empty_unlabeled_dir_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(
        ValueError, match=r"^data.few_labels.unlabeled_dir=.*empty holds no image files"
    ):
        synthetic(tmp_path, few_labels={"unlabeled_dir": tmp_path / "empty"})
