"""A datamodule's grouped options (`seglab.data.settings`): each ``data.<group>`` node, from
Hydra, a dict or its settings class, checked by that class with errors that name the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hydra.utils import instantiate
from tiny import binary_folder, data_options, with_options

from seglab.data import FolderDataModule, SyntheticShapesDataModule
from seglab.data.loaders import LoaderSettings
from seglab.data.transforms import AugmentSettings

SMALL = {"num_train": 8, "num_val": 4, "num_test": 4, "loader": {"batch_size": 2}}


def synthetic(**options) -> SyntheticShapesDataModule:
    small = with_options(data_options("synthetic"), **SMALL)
    return SyntheticShapesDataModule(**with_options(small, **options))


def test_instantiate_reads_the_groups_a_command_line_sets(compose, tmp_path: Path) -> None:
    overrides = ["data.loader.batch_size=3", "data.splits.folds=2", "data.splits.fold=1"]
    cfg = compose("train", *overrides, f"paths.output_dir={tmp_path}")
    datamodule = instantiate(cfg.data)
    assert isinstance(datamodule.loader, LoaderSettings)
    assert datamodule.loader.batch_size == 3 and datamodule.loader.eval_batch_size == 64
    assert (datamodule.splits.folds, datamodule.splits.fold) == (2, 1)
    # the generator's seed, interpolated into the group from the level above
    assert datamodule.splits.fold_seed == cfg.data.seed
    assert datamodule.splits.folds_record == tmp_path / "folds.json"


def test_a_group_may_be_given_as_its_settings_class(tmp_path: Path) -> None:
    settings = LoaderSettings(
        batch_size=2,
        eval_batch_size=None,
        num_workers=0,
        pin_memory=False,
        persistent_workers=False,
        drop_last=False,
    )
    datamodule = synthetic(loader=settings)
    assert datamodule.loader is settings
    assert settings.eval_batch_size == 2, "None evaluates in training batches"
    assert settings.repeat_threshold is None, "configs saved before it sample uniformly"
    augment = AugmentSettings(None, None, 1.0, 0.0, None)
    assert binary_folder(tmp_path, augment=augment).augment is augment


def test_a_key_a_group_does_not_have_is_refused_with_its_keys() -> None:
    message = r"^data\.loader\.batchsize is no key of data\.loader; its keys: batch_size, eval_"
    with pytest.raises(ValueError, match=message):
        synthetic(loader={"batchsize": 2})


def test_a_key_a_group_needs_is_refused_naming_it() -> None:
    values = data_options("synthetic")
    del values["loader"]["drop_last"]
    with pytest.raises(ValueError, match=r"^data\.loader\.drop_last is not set; give data\.loader"):
        SyntheticShapesDataModule(**values)


def test_a_group_given_as_a_value_is_refused_naming_its_keys() -> None:
    with pytest.raises(ValueError, match=r"^data\.splits=3 must be a node of the keys folds, fold"):
        synthetic(splits=3)


@pytest.mark.parametrize(
    ("augment", "message"),
    [
        (
            {"scale_range": [2.0, 1.0]},
            r"data\.augment\.scale_range=\[2\.0, 1\.0\] must be \[low, high\]",
        ),
        ({"scale_range": [0.5]}, r"data\.augment\.scale_range=\[0\.5\] must be \[low, high\]"),
        ({"crop_size": [0, 16]}, r"data\.augment\.crop_size=\[0, 16\] must be \[height, width\]"),
        ({"crop_size": [16]}, r"data\.augment\.crop_size=\[16\] must be \[height, width\]"),
        ({"hflip": 1.5}, r"data\.augment\.hflip=1\.5 must be a probability in \[0, 1\]"),
        ({"vflip": -0.1}, r"data\.augment\.vflip=-0\.1 must be a probability in \[0, 1\]"),
    ],
)
def test_augmentation_options_are_checked_naming_the_key(
    tmp_path: Path, augment: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        binary_folder(tmp_path, augment=augment)


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        (
            {"split_names": {"training": "train"}},
            r"data\.layout\.split_names=\{'training': 'train'\} must name the train split",
        ),
        ({"split_names": {"train": "train", "valid": "val"}}, r"must name the train split"),
        ({"mask_extension": "png"}, r"data\.layout: the extension 'png' must start with a dot"),
        ({"image_extensions": [".jpg", "tif"]}, r"the extension 'tif' must start with a dot"),
    ],
)
def test_layout_options_are_checked_naming_the_key(
    tmp_path: Path, layout: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        binary_folder(tmp_path, layout=layout)


def test_the_layout_reads_its_folders_from_the_group(tmp_path: Path) -> None:
    root = tmp_path / "flat"
    (root / "pictures").mkdir(parents=True)
    (root / "labels").mkdir()
    datamodule = binary_folder(root, layout={"image_dir": "pictures", "mask_dir": "labels"})
    assert isinstance(datamodule, FolderDataModule)
    assert datamodule.layout.folder(datamodule.layout.image_dir, "train") == root / "pictures"
    assert re.search(r"pictures holds all the images", datamodule.split_unavailable("val"))
