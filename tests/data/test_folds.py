"""k-fold cross-validation: the folds of the train split, what each run trains and validates
on, the one-line refusals of bad fold settings, and a whole cross-validation compared."""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny import (
    TINY,
    binary_folder,
    data_options,
    quick_first,
    refused_before_training,
    save_pair,
    with_options,
)

from seglab.cli.compare import main as compare_main
from seglab.cli.train import main as train_main
from seglab.data import FolderDataModule, SyntheticShapesDataModule
from seglab.data.base import SegmentationDataModule
from seglab.runs.directories import read_scalars

FOLDS = 3
NUM_TRAIN = 11  # not a multiple of FOLDS: the folds differ in size


def synthetic(tmp_path: Path, **splits) -> SyntheticShapesDataModule:
    values = {**data_options("synthetic"), "num_train": NUM_TRAIN, "num_val": 5, "num_test": 4}
    values = with_options(values, loader={"batch_size": 2})
    values = with_options(values, splits={"folds_record": tmp_path / "folds.json", **splits})
    return SyntheticShapesDataModule(**values)


@pytest.fixture
def folder_root(tmp_path: Path) -> Path:
    """NUM_TRAIN train and 2 val image/mask pairs; each image's red channel is its index."""
    root = tmp_path / "cells"
    for split, count in (("train", NUM_TRAIN), ("val", 2)):
        for index in range(count):
            mask = np.zeros((8, 10), np.uint8)
            mask[: index % 8, :3] = 255
            ramp = np.broadcast_to(np.arange(10, dtype=np.uint8), mask.shape)
            image = np.stack([np.full_like(mask, index), mask, ramp], -1)
            save_pair(root, split, f"{split}-{index:02d}", image, mask)
    return root


def folder(root: Path, tmp_path: Path, **splits) -> FolderDataModule:
    """conf/data/folder.yaml's datamodule on ``root``: binary masks, always flipped in training."""
    augment = {"hflip": 1.0, "color_jitter": None}
    splits = {"folds_record": tmp_path / "folds.json", **splits}
    return binary_folder(root, augment=augment, splits=splits)


def record_of(datamodule: SegmentationDataModule) -> dict:
    datamodule.setup("fit")
    return json.loads(Path(datamodule.splits.folds_record).read_text())


def all_folds(build, seed: int) -> list[dict]:
    return [record_of(build(folds=FOLDS, fold=fold, fold_seed=seed)) for fold in range(FOLDS)]


@pytest.mark.parametrize("kind", ["synthetic", "folder"])
def test_folds_are_disjoint_cover_the_train_split_and_repeat_for_a_seed(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "synthetic":
        names = [f"synthetic train sample {index}" for index in range(NUM_TRAIN)]

        def build(**options):
            return synthetic(tmp_path, **options)
    else:
        root = request.getfixturevalue("folder_root")
        names = sorted(path.stem for path in (root / "train" / "images").iterdir())

        def build(**options):
            return folder(root, tmp_path, **options)

    records = all_folds(build, seed=0)
    vals = [set(record["val"]) for record in records]
    for i in range(FOLDS):
        for j in range(i + 1, FOLDS):
            assert not vals[i] & vals[j], f"folds {i} and {j} share samples"
    assert set().union(*vals) == set(names) and sum(map(len, vals)) == NUM_TRAIN
    assert sorted(map(len, vals)) == [3, 4, 4], "sizes differ by at most one"
    for fold, record in enumerate(records):
        assert record["folds"] == FOLDS and record["fold"] == fold
        assert record["train"] == [name for name in names if name not in vals[fold]]
    assert all_folds(build, seed=0) == records, "the same seed gives the same folds"
    assert [set(r["val"]) for r in all_folds(build, seed=1)] != vals, "another seed, others"


def test_a_synthetic_fold_validates_on_its_train_samples_and_keeps_the_test_split(
    tmp_path: Path,
) -> None:
    plain = synthetic(tmp_path, folds=None, fold=None)
    whole = {name: (image, mask) for image, mask, name in plain.dataset("train")}
    datamodule = synthetic(tmp_path, folds=FOLDS, fold=1)
    record = record_of(datamodule)
    for split in ("train", "val"):
        items = list(datamodule.dataset(split))
        assert [name for _, _, name in items] == record[split]
        for image, mask, name in items:
            torch.testing.assert_close(image, whole[name][0])
            torch.testing.assert_close(mask, whole[name][1])
    test = datamodule.dataset("test")
    torch.testing.assert_close(test.images, plain.dataset("test").images)


def test_a_folder_fold_validates_on_unaugmented_train_files(
    folder_root: Path, tmp_path: Path
) -> None:
    datamodule = folder(folder_root, tmp_path, folds=FOLDS, fold=2)
    record = record_of(datamodule)
    images = folder_root / "train" / "images"
    val = list(datamodule.dataset("val"))
    assert [name for _, _, name in val] == [str(images / f"{s}.png") for s in record["val"]]
    assert datamodule.split_unavailable("val") is None
    for image, mask, name in val:
        raw = np.asarray(Image.open(name))
        # hflip=1.0 flips every training image, never a validation one
        assert int(round(float(image[0, 0, 0] * 0.229 + 0.485) * 255)) == raw[0, 0, 0]
        assert image[2, 0, 0] < image[2, 0, -1], "not flipped"
        assert mask.sum() == (raw[..., 1] == 255).sum()
    train_image, _, train_name = datamodule.dataset("train")[0]
    assert Path(train_name).stem == record["train"][0]
    assert train_image[2, 0, 0] > train_image[2, 0, -1], "training images are augmented"
    class_pixels, image_pixels = datamodule.class_pixel_counts("val")
    expected = [int(mask.eq(1).sum()) for _, mask, _ in val]
    assert class_pixels[:, 1].tolist() == expected and image_pixels.tolist() == [80] * len(val)


BAD_FOLDS = {
    "fold outside": (
        ["data.splits.folds=3", "data.splits.fold=3"],
        "data.splits.fold=3 must be in [0, 3)",
    ),
    "fold negative": (
        ["data.splits.folds=3", "data.splits.fold=-1"],
        "data.splits.fold=-1 must be in [0, 3)",
    ),
    "too few folds": (
        ["data.splits.folds=1", "data.splits.fold=0"],
        "data.splits.folds=1 must be at least 2",
    ),
    "more folds than samples": (
        ["data.splits.folds=33", "data.splits.fold=0"],
        "data.splits.folds=33 exceeds the 32 samples of the train split",
    ),
    "fold without folds": (
        ["data.splits.fold=1"],
        "data.splits.fold=1 is set but data.splits.folds is null",
    ),
}


@pytest.mark.parametrize("case", quick_first(BAD_FOLDS))
def test_bad_fold_settings_stop_the_run_in_one_line_before_training(
    case: str, tmp_path: Path, cli
) -> None:
    overrides, message = BAD_FOLDS[case]
    run_dir = refused_before_training(cli, tmp_path, *TINY, *overrides, message=message)
    assert not list(run_dir.glob("events.out.*"))


@pytest.mark.slow
def test_a_cross_validation_sweep_is_one_row_of_seglab_compare(
    tmp_path: Path, cli, capsys: pytest.CaptureFixture[str]
) -> None:
    """seglab-train -m over every fold, then seglab-compare: the mean and sample std of the
    folds' best scores, read back from each run independently."""
    args = ["-m", *TINY, "trainer.max_epochs=1", "data.splits.folds=3", "data.splits.fold=range(3)"]
    code, _, err = cli(train_main, *args, f"paths.output_root={tmp_path}", cwd=tmp_path)
    assert code == 0, err[-3000:]
    (sweep_dir,) = (tmp_path / "train" / "multirun").iterdir()
    runs = sorted(path for path in sweep_dir.iterdir() if path.is_dir())
    assert [run.name for run in runs] == ["fold=0", "fold=1", "fold=2"]
    vals = [json.loads((run / "folds.json").read_text())["val"] for run in runs]
    assert sorted(name for val in vals for name in val) == sorted(
        f"synthetic train sample {index}" for index in range(32)
    )
    compare_main([str(sweep_dir), "--format", "csv"])
    (row,) = csv.DictReader(io.StringIO(capsys.readouterr().out))
    assert row["folds"] == "3"
    best = [max(value for _, value in read_scalars(run)["val/mIoU"]) for run in runs]
    assert float(row["best val/mIoU"]) == pytest.approx(statistics.fmean(best))
    assert float(row["best val/mIoU std"]) == pytest.approx(statistics.stdev(best))
