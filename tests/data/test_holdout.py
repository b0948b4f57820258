"""A held-out group (``data.splits.holdout``): the train images of some name prefixes become the val
split, the record of what was trained and validated on, and the one-line refusals."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from tiny import (
    binary_folder,
    data_options,
    quick_first,
    refused_before_training,
    save_pair,
    with_options,
)

from seglab.cli.train import main as train_main
from seglab.data import CamVidDataModule, FolderDataModule
from seglab.data.folder import SegmentationDataModule

#: the generated folder dataset's train images, by group
GROUPS = {"seqA": 3, "seqB": 2, "seq10": 2}
#: CamVid's train frames, by the sequence their names start with
CAMVID_SEQUENCES = {"0001TP": 62, "0006R0": 101, "0016E5": 204}


@pytest.fixture
def grouped_root(tmp_path: Path) -> Path:
    """Train images named ``<group>_<frame>`` (`GROUPS`), and a val and a test split."""
    root = tmp_path / "streets"
    train = [f"{group}_{frame:03d}" for group, count in GROUPS.items() for frame in range(count)]
    stems = {
        "train": train,
        "val": ["seqA_900", "seqB_900"],
        "test": ["seqC_000"],
    }
    for split, names in stems.items():
        for index, stem in enumerate(names):
            mask = np.zeros((6, 8), np.uint8)
            mask[:index, :2] = 255
            save_pair(root, split, stem, np.stack([mask] * 3, -1), mask)
    return root


def folder(root: Path, tmp_path: Path, **splits) -> FolderDataModule:
    """`binary_folder` on ``root``, recording its held-out group in ``tmp_path``."""
    return binary_folder(root, splits={"holdout_record": tmp_path / "holdout.json", **splits})


def camvid(root: Path, tmp_path: Path, **splits) -> CamVidDataModule:
    values = {**data_options("camvid"), "root": root, "cache_dir": tmp_path / "cache"}
    splits = {"holdout_record": tmp_path / "holdout.json", **splits}
    return CamVidDataModule(**with_options(values, splits=splits))


def split_stems(datamodule: SegmentationDataModule) -> dict[str, list[str]]:
    """The stems of the train and val images the datamodule hands out, read from its items."""
    return {
        split: [Path(name).stem for _, _, name in datamodule.dataset(split)]
        for split in ("train", "val")
    }


def listed_stems(datamodule: SegmentationDataModule) -> dict[str, list[str]]:
    """`split_stems` read from the image files each split's dataset lists, none decoded."""
    return {
        split: [Path(dataset.dataset.pairs[index][0]).stem for index in dataset.indices]
        for split, dataset in ((split, datamodule.dataset(split)) for split in ("train", "val"))
    }


def fitted_record(datamodule: SegmentationDataModule) -> dict:
    datamodule.setup("fit")
    return json.loads(Path(datamodule.splits.holdout_record).read_text())


@pytest.mark.parametrize("holdout", ["seqB", ["seqA", "seq10"]])
def test_a_folder_holdout_validates_on_its_groups_only_and_records_them(
    holdout: str | list[str], grouped_root: Path, tmp_path: Path
) -> None:
    prefixes = [holdout] if isinstance(holdout, str) else holdout
    train_stems = sorted(path.stem for path in (grouped_root / "train" / "images").iterdir())
    expected_val = [stem for stem in train_stems if stem.split("_")[0] in prefixes]
    datamodule = folder(grouped_root, tmp_path, holdout=holdout)
    record = fitted_record(datamodule)
    stems = split_stems(datamodule)
    assert record == {"holdout": prefixes, **stems}
    assert stems["val"] == expected_val
    assert stems["train"] == [stem for stem in train_stems if stem not in expected_val]
    assert not set(stems["val"]) & set(stems["train"])
    val_folders = {Path(name).parent for _, _, name in datamodule.dataset("val")}
    assert val_folders == {grouped_root / "train" / "images"}, "the val split is not used"
    assert [Path(name).stem for _, _, name in datamodule.dataset("test")] == ["seqC_000"]
    again = folder(grouped_root, tmp_path / "again", holdout=holdout)
    assert fitted_record(again) == record, "the same prefixes hold out the same images"


def test_without_holdout_the_val_split_is_the_datasets_and_nothing_is_recorded(
    grouped_root: Path, tmp_path: Path
) -> None:
    datamodule = folder(grouped_root, tmp_path, holdout=None)
    datamodule.setup("fit")
    assert split_stems(datamodule)["val"] == ["seqA_900", "seqB_900"]
    assert not (tmp_path / "holdout.json").exists()


def test_camvid_holdout_of_a_sequence_splits_by_frame_names(
    camvid_root: Path, tmp_path: Path
) -> None:
    """Quick: the split as the datamodule computes it from the file names, no file decoded."""
    for sequence, count in CAMVID_SEQUENCES.items():
        datamodule = camvid(camvid_root, tmp_path, holdout=sequence)
        names = datamodule.sample_names("train")
        split = datamodule.split_plan().validation
        val = [names[index] for index in split.val]
        train = [names[index] for index in split.train]
        assert len(val) == count and all(name.startswith(f"{sequence}_") for name in val)
        assert len(train) == 367 - count and not any(n.startswith(sequence) for n in train)
        assert sorted(val + train) == sorted(names)
        again = camvid(camvid_root, tmp_path, holdout=sequence).split_plan().validation
        assert again == split


@pytest.mark.slow
def test_camvid_holdout_record_matches_what_the_datamodule_trains_and_validates_on(
    camvid_root: Path, tmp_path: Path
) -> None:
    """Slow: setup checks every train frame (a few seconds)."""
    datamodule = camvid(camvid_root, tmp_path, holdout="0006R0")
    record = fitted_record(datamodule)
    stems = listed_stems(datamodule)
    assert record == {"holdout": ["0006R0"], **stems}
    assert len(stems["val"]) == 101 and {s.split("_")[0] for s in stems["val"]} == {"0006R0"}
    assert {s.split("_")[0] for s in stems["train"]} == {"0001TP", "0016E5"}
    assert len(stems["train"]) == 266 and not set(stems["val"]) & set(stems["train"])
    class_pixels, _ = datamodule.class_pixel_counts("val")
    assert class_pixels.shape == (101, 11)


FOLDER = ["data=folder", "data.classes=[background,cell]", "data.mask_values=[0,255]"]
FOLDER += [
    "data.augment.crop_size=null",
    "data.augment.scale_range=null",
    "data.loader.num_workers=0",
]
FOLDER += ["data.loader.batch_size=2", "model.encoder.widths=[8,16,32]"]
BAD_HOLDOUT = {
    "no such group": (
        ["data.splits.holdout=seqC"],
        "data.splits.holdout=seqC: no name of the 7 train samples starts with seqC; their groups "
        "(the part before the first _) are seq10, seqA, seqB",
    ),
    "one of a list matches nothing": (
        ["data.splits.holdout=[seqA,seqZ]"],
        "data.splits.holdout=[seqA,seqZ]: no name of the 7 train samples starts with seqZ;",
    ),
    "every group": (
        ["data.splits.holdout=[seqA,seqB,seq10]"],
        "data.splits.holdout=[seqA,seqB,seq10] takes all 7 train samples, leaving none to train on",
    ),
    "a number": (
        ["data.splits.holdout=10"],
        "data.splits.holdout=10 must be a non-empty stem prefix",
    ),
    "empty": (["data.splits.holdout=''"], "data.splits.holdout='' must be a non-empty stem prefix"),
    "with folds": (
        ["data.splits.holdout=seqA", "data.splits.folds=3", "data.splits.fold=0"],
        "data.splits.holdout=seqA and data.splits.folds=3 both choose the validation samples",
    ),
}


@pytest.mark.parametrize("case", quick_first(BAD_HOLDOUT))
def test_bad_holdout_settings_stop_the_run_in_one_line_before_training(
    case: str, grouped_root: Path, tmp_path: Path, cli
) -> None:
    overrides, message = BAD_HOLDOUT[case]
    run_dir = refused_before_training(
        cli, tmp_path, *FOLDER, f"data.root={grouped_root}", *overrides, message=message
    )
    assert not (run_dir / "holdout.json").exists()


def test_an_unknown_camvid_sequence_names_the_sequences_there_are(
    camvid_root: Path, tmp_path: Path, cli
) -> None:
    code, _, err = cli(
        train_main,
        "data=camvid",
        f"data.root={camvid_root}",
        "data.splits.holdout=0005VP",
        f"paths.output_root={tmp_path}",
        cwd=tmp_path,
    )
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith(
        "seglab-train: error: data.splits.holdout=0005VP: no name of the 367 "
    ), line
    assert re.search(r"their groups \(.*\) are 0001TP, 0006R0, 0016E5$", line), line
