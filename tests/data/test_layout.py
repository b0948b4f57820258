"""Folder layouts as datasets are distributed: Cityscapes (name suffixes, a folder per city),
VOC (one image folder, split list files), ADE20K (split folders by other names), lists of
image/mask pairs, and each layout's refusals naming the file and the key that fixes it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny import UNAUGMENTED, folder_datamodule

from seglab.data import DatasetError, FolderDataModule, LayoutSettings
from seglab.data.settings import settings_of

CLASSES = ["road", "car", "sky"]
CITIES = {"train": ("aachen", "bochum"), "val": ("frankfurt",)}
CITYSCAPES = {
    "image_dir": "leftImg8bit/{split}",
    "mask_dir": "gtFine/{split}",
    "image_suffix": "_leftImg8bit",
    "mask_suffix": "_gtFine_labelIds",
    "recursive": True,
}
VOC = {
    "image_dir": "JPEGImages",
    "mask_dir": "SegmentationClass",
    "split_files": {
        "train": "ImageSets/Segmentation/train.txt",
        "val": "ImageSets/Segmentation/val.txt",
    },
}
ADE = {
    "image_dir": "images/{split}",
    "mask_dir": "annotations/{split}",
    "split_names": {"train": "training", "val": "validation"},
}


def labels(index: int) -> np.ndarray:
    """A 6x8 mask of the three classes whose rows differ by ``index``, so that each sample's
    mask is its own."""
    mask = np.zeros((6, 8), np.uint8)
    mask[2 + index % 3 :, :] = 1
    mask[:1, :] = 2
    return mask


def save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def image_of(mask: np.ndarray) -> np.ndarray:
    """An RGB image whose red channel is 100 times the mask: the pair it belongs to shows."""
    return np.stack([mask * 100, mask * 0 + 7, mask * 0], -1).astype(np.uint8)


def cityscapes_tree(root: Path) -> Path:
    """Two train cities of two frames and a val city of one, as Cityscapes ships them: the
    label ids beside colour and instance masks and polygons of the same frame."""
    index = 0
    for split, cities in CITIES.items():
        for city in cities:
            for frame in range(2 if split == "train" else 1):
                name = f"{city}_000000_00001{frame}"
                mask = labels(index)
                save(
                    root / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png", image_of(mask)
                )
                masks = root / "gtFine" / split / city
                save(masks / f"{name}_gtFine_labelIds.png", mask)
                save(masks / f"{name}_gtFine_instanceIds.png", mask * 3)
                save(masks / f"{name}_gtFine_color.png", image_of(mask))
                (masks / f"{name}_gtFine_polygons.json").write_text("{}")
                index += 1
    return root


def voc_tree(root: Path) -> Path:
    """Five JPEG photos, masks for four of them, and the lists of the train and val splits."""
    for index in range(1, 6):
        mask = labels(index)
        save(root / "JPEGImages" / f"2007_00000{index}.jpg", image_of(mask))
        if index < 5:
            save(root / "SegmentationClass" / f"2007_00000{index}.png", mask)
    lists = root / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text("2007_000001\n2007_000003\n2007_000004\n")
    (lists / "val.txt").write_text("2007_000002\n")
    return root


def ade_tree(root: Path) -> Path:
    for split, kind, count in (("training", "train", 3), ("validation", "val", 2)):
        for index in range(1, count + 1):
            name = f"ADE_{kind}_0000000{index}"
            mask = labels(index)
            save(root / "images" / split / f"{name}.jpg", image_of(mask))
            save(root / "annotations" / split / f"{name}.png", mask)
    return root


def make(root: Path, layout: dict, **options) -> FolderDataModule:
    """conf/data/folder.yaml's datamodule of three classes with ``layout``'s keys in place."""
    stats = {"mean": [0.0] * 3, "std": [1.0] * 3}
    return folder_datamodule(
        root, classes=CLASSES, layout=layout, **stats, **{**UNAUGMENTED, **options}
    )


def relative(root: Path, pairs: list) -> list[tuple[str, str]]:
    return [(str(image.relative_to(root)), str(mask.relative_to(root))) for image, mask in pairs]


# --- Cityscapes: suffixes and a folder per city --------------------------------------------


def test_cityscapes_pairs_each_frame_with_its_label_ids(tmp_path: Path) -> None:
    root = cityscapes_tree(tmp_path / "cityscapes")
    datamodule = make(root, CITYSCAPES)
    frames = [f"{city}/{city}_000000_00001{f}" for city in ("aachen", "bochum") for f in (0, 1)]
    assert relative(root, datamodule.pairs("train")) == [
        (f"leftImg8bit/train/{n}_leftImg8bit.png", f"gtFine/train/{n}_gtFine_labelIds.png")
        for n in frames
    ]
    datamodule.setup("fit")
    for image, mask, name in datamodule.dataset("train"):
        # the red channel is 100 x the mask's labels where the right mask was read
        assert torch.equal((image[0] * 255).round().long(), mask * 100), name
    assert relative(root, datamodule.pairs("val")) == [
        (
            "leftImg8bit/val/frankfurt/frankfurt_000000_000010_leftImg8bit.png",
            "gtFine/val/frankfurt/frankfurt_000000_000010_gtFine_labelIds.png",
        )
    ]


def test_cityscapes_frame_without_label_ids_is_named(tmp_path: Path) -> None:
    root = cityscapes_tree(tmp_path / "cityscapes")
    (root / "gtFine/train/bochum/bochum_000000_000011_gtFine_labelIds.png").unlink()
    message = (
        r"1 image\(s\) without a mask <name>_gtFine_labelIds\.png in .*gtFine/train: "
        r"\[.*bochum_000000_000011_leftImg8bit\.png'\].*data\.layout\.mask_suffix"
    )
    with pytest.raises(DatasetError, match=message):
        make(root, CITYSCAPES).setup("fit")


def test_cityscapes_label_ids_without_a_frame_are_named(tmp_path: Path) -> None:
    root = cityscapes_tree(tmp_path / "cityscapes")
    (root / "leftImg8bit/train/aachen/aachen_000000_000010_leftImg8bit.png").unlink()
    message = r"1 mask\(s\) without an image .*aachen_000000_000010_gtFine_labelIds\.png"
    with pytest.raises(DatasetError, match=message):
        make(root, CITYSCAPES).pairs("train")


def test_without_the_mask_suffix_every_mask_file_is_named_with_the_key(tmp_path: Path) -> None:
    root = cityscapes_tree(tmp_path / "cityscapes")
    message = r"mask\(s\) without an image .*_gtFine_color\.png.*data\.layout\.mask_suffix"
    with pytest.raises(DatasetError, match=message):
        make(root, {**CITYSCAPES, "mask_suffix": ""}).pairs("train")


def test_two_images_of_one_frame_are_refused(tmp_path: Path) -> None:
    root = cityscapes_tree(tmp_path / "cityscapes")
    frame = root / "leftImg8bit/train/bochum/bochum_000000_000010_leftImg8bit"
    save(frame.with_suffix(".jpg"), image_of(labels(0)))
    message = r"bochum_000000_000010_leftImg8bit\.png and .*\.jpg are both the image of sample"
    with pytest.raises(DatasetError, match=message):
        make(root, CITYSCAPES).pairs("train")


def test_city_folders_without_recursive_name_the_key(tmp_path: Path) -> None:
    root = cityscapes_tree(tmp_path / "cityscapes")
    message = r"the train split is empty: .*leftImg8bit/train holds subfolders.*recursive=true"
    with pytest.raises(DatasetError, match=message):
        make(root, {**CITYSCAPES, "recursive": False}).pairs("train")


def test_a_wrong_image_suffix_names_the_key_and_a_file(tmp_path: Path) -> None:
    root = cityscapes_tree(tmp_path / "cityscapes")
    (root / "leftImg8bit/train/aachen/readme.txt").write_text("not an image")
    message = (
        r"the train split is empty: no images <name>_leftimg8bit.* in .*4 file\(s\) such as "
        r"aachen_000000_000010_leftImg8bit\.png do not end in data\.layout\.image_suffix"
    )
    with pytest.raises(DatasetError, match=message):
        make(root, {**CITYSCAPES, "image_suffix": "_leftimg8bit"}).pairs("train")


def test_frames_of_one_name_in_two_scenes_pair_within_their_scene(tmp_path: Path) -> None:
    """Scene folders that number their frames alike (scene1/0001.png, scene2/0001.png): each
    frame pairs with the mask at its own path, and hidden folders are no scene."""
    root = tmp_path / "scenes"
    for index, scene in enumerate(("scene1", "scene2")):
        save(root / "train/images" / scene / "0001.png", image_of(labels(index)))
        save(root / "train/masks" / scene / "0001.png", labels(index))
    save(root / "train/images/.thumbnails/0001.png", image_of(labels(2)))
    datamodule = make(root, {"recursive": True})
    assert relative(root, datamodule.pairs("train")) == [
        (f"train/images/{scene}/0001.png", f"train/masks/{scene}/0001.png")
        for scene in ("scene1", "scene2")
    ]
    assert datamodule.sample_names("train") == ["scene1/0001", "scene2/0001"]
    for image, mask, name in datamodule.dataset("train"):
        assert torch.equal((image[0] * 255).round().long(), mask * 100), name


def test_a_city_is_held_out_by_the_folder_in_its_sample_names(tmp_path: Path) -> None:
    root = cityscapes_tree(tmp_path / "cityscapes")
    datamodule = make(root, CITYSCAPES, splits={"holdout": "bochum/"})
    assert datamodule.sample_names("train")[:2] == [
        "aachen/aachen_000000_000010",
        "aachen/aachen_000000_000011",
    ]
    datamodule.setup("fit")
    validated = [Path(name).name for _, _, name in datamodule.dataset("val")]
    assert validated == [f"bochum_000000_00001{f}_leftImg8bit.png" for f in (0, 1)]


# --- VOC: one folder of images, split list files ------------------------------------------


def test_voc_lists_choose_each_split(tmp_path: Path) -> None:
    root = voc_tree(tmp_path / "VOC2012")
    datamodule = make(root, VOC)
    assert relative(root, datamodule.pairs("train")) == [
        (f"JPEGImages/2007_00000{i}.jpg", f"SegmentationClass/2007_00000{i}.png") for i in (1, 3, 4)
    ]
    assert relative(root, datamodule.pairs("val")) == [
        ("JPEGImages/2007_000002.jpg", "SegmentationClass/2007_000002.png")
    ]
    assert "no test split" in datamodule.split_unavailable("test")
    datamodule.setup("fit")


def test_voc_listed_image_without_a_mask_is_named(tmp_path: Path) -> None:
    root = voc_tree(tmp_path / "VOC2012")
    (root / "ImageSets/Segmentation/val.txt").write_text("2007_000002\n2007_000005\n")
    message = (
        r"1 image\(s\) without a mask .*SegmentationClass: \[.*2007_000005\.jpg'\].*; or "
        r"remove them from .*val\.txt"
    )
    with pytest.raises(DatasetError, match=message):
        make(root, VOC).pairs("val")


def test_voc_listed_name_without_an_image_is_named(tmp_path: Path) -> None:
    root = voc_tree(tmp_path / "VOC2012")
    (root / "ImageSets/Segmentation/val.txt").write_text("2007_000002\n2008_000009\n")
    message = r"val\.txt lists 1 stem\(s\) with no image .*JPEGImages: \['2008_000009'\]"
    with pytest.raises(DatasetError, match=message):
        make(root, VOC).pairs("val")


def test_voc_sample_listed_twice_is_named(tmp_path: Path) -> None:
    root = voc_tree(tmp_path / "VOC2012")
    (root / "ImageSets/Segmentation/train.txt").write_text(
        "2007_000001\n2007_000003\n2007_000001\n"
    )
    message = r"train\.txt:3 lists the sample '2007_000001' a second time"
    with pytest.raises(DatasetError, match=message):
        make(root, VOC).pairs("train")


def test_voc_empty_list_is_an_empty_split(tmp_path: Path) -> None:
    root = voc_tree(tmp_path / "VOC2012")
    (root / "ImageSets/Segmentation/val.txt").write_text("\n")
    with pytest.raises(DatasetError, match=r"the val split is empty: .*val\.txt lists none"):
        make(root, VOC).pairs("val")


# --- ADE20K: split folders named training and validation ----------------------------------


def test_ade_pairs_the_split_folders_by_their_names(tmp_path: Path) -> None:
    root = ade_tree(tmp_path / "ADEChallengeData2016")
    datamodule = make(root, ADE)
    assert relative(root, datamodule.pairs("train")) == [
        (
            f"images/training/ADE_train_0000000{i}.jpg",
            f"annotations/training/ADE_train_0000000{i}.png",
        )
        for i in (1, 2, 3)
    ]
    assert [image.name for image, _ in datamodule.pairs("val")] == [
        "ADE_val_00000001.jpg",
        "ADE_val_00000002.jpg",
    ]
    assert "data.layout.split_names" in datamodule.split_unavailable("test")


def test_ade_annotation_without_an_image_is_named(tmp_path: Path) -> None:
    root = ade_tree(tmp_path / "ADEChallengeData2016")
    (root / "images/validation/ADE_val_00000002.jpg").unlink()
    message = r"1 mask\(s\) without an image .*annotations/validation/ADE_val_00000002\.png"
    with pytest.raises(DatasetError, match=message):
        make(root, ADE).pairs("val")


def test_ade_image_without_an_annotation_is_named(tmp_path: Path) -> None:
    root = ade_tree(tmp_path / "ADEChallengeData2016")
    (root / "annotations/training/ADE_train_00000002.png").unlink()
    message = r"1 image\(s\) without a mask .*\[.*images/training/ADE_train_00000002\.jpg'\]"
    with pytest.raises(DatasetError, match=message):
        make(root, ADE).pairs("train")


# --- lists of image/mask pairs -------------------------------------------------------------


def pair_lists(root: Path, train: str, val: str = "") -> dict:
    (root / "train_pairs.txt").write_text(train)
    (root / "val_pairs.txt").write_text(val or train)
    return {**ADE, "split_files": {"train": "train_pairs.txt", "val": "val_pairs.txt"}}


def test_a_list_of_pairs_is_the_split(tmp_path: Path) -> None:
    root = ade_tree(tmp_path / "ade")
    first, third = "ADE_train_00000001", "ADE_train_00000003"
    layout = pair_lists(
        root,
        f"images/training/{third}.jpg annotations/training/{third}.png\n"
        f"/images/training/{first}.jpg  /annotations/training/{first}.png\n",
    )
    datamodule = make(root, layout)
    assert relative(root, datamodule.pairs("train")) == [
        (f"images/training/{third}.jpg", f"annotations/training/{third}.png"),
        (f"images/training/{first}.jpg", f"annotations/training/{first}.png"),
    ]
    assert datamodule.sample_names("train") == [f"images/training/{n}" for n in (third, first)]


def test_a_list_of_pairs_needs_no_split_folder(tmp_path: Path) -> None:
    """The list names every file: the layout's folders need not exist."""
    root = ade_tree(tmp_path / "ade")
    name = "ADE_train_00000002"
    layout = pair_lists(root, f"images/training/{name}.jpg annotations/training/{name}.png\n")
    layout = {"split_files": layout["split_files"]}
    assert not (root / "train" / "images").exists()
    assert relative(root, make(root, layout).pairs("train")) == [
        (f"images/training/{name}.jpg", f"annotations/training/{name}.png")
    ]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            "images/training/ADE_train_00000001.jpg annotations/training/nope.png\n",
            r"train_pairs\.txt lists 1 mask\(s\) that do not exist: \[.*nope\.png'\].*data\.root",
        ),
        (
            "images/training/nope.jpg annotations/training/ADE_train_00000001.png\n",
            r"train_pairs\.txt lists 1 image\(s\) that do not exist: \[.*nope\.jpg'\]",
        ),
        (
            "images/training/ADE_train_00000001.jpg annotations/training/ADE_train_00000001.png\n"
            "images/training/ADE_train_00000002.jpg annotations/training/ADE_train_00000001.png\n",
            r"lists the mask .*ADE_train_00000001\.png twice, with .*00000001\.jpg and with "
            r".*00000002\.jpg; each mask has exactly one image",
        ),
        ("a.jpg a.png extra\n", r"train_pairs\.txt:1 has 3 fields"),
        (
            "images/training/ADE_train_00000001.jpg annotations/training/ADE_train_00000001.png\n"
            "ADE_train_00000002\n",
            r"train_pairs\.txt:2 mixes sample names and image/mask pairs",
        ),
    ],
)
def test_a_bad_list_of_pairs_is_refused_naming_the_line(
    tmp_path: Path, lines: str, message: str
) -> None:
    root = ade_tree(tmp_path / "ade")
    with pytest.raises(DatasetError, match=message):
        make(root, pair_lists(root, lines)).pairs("train")


def test_a_list_of_pairs_needs_one_mask_per_image_in_multilabel_mode(tmp_path: Path) -> None:
    root = ade_tree(tmp_path / "ade")
    line = "images/training/ADE_train_00000001.jpg annotations/training/ADE_train_00000001.png"
    datamodule = make(root, pair_lists(root, line), mode="multilabel", mask_values=None)
    with pytest.raises(DatasetError, match=r"train_pairs\.txt lists image/mask pairs, but mode"):
        datamodule.pairs("train")


# --- the settings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        (
            {"split_files": {"validation": "val.txt"}},
            r"data\.layout\.split_files names the split 'validation'.*key each list by train",
        ),
        ({"mask_suffix": "/gtFine"}, r"data\.layout\.mask_suffix='/gtFine' must be the end of"),
    ],
)
def test_layout_keys_are_checked_naming_the_key(tmp_path: Path, layout: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(tmp_path, layout)


def test_a_stored_layout_without_the_new_keys_pairs_by_equal_stems() -> None:
    """A config saved before the suffix and subfolder keys existed reads as then."""
    stored = {
        "image_dir": "{split}/images",
        "mask_dir": "{split}/masks",
        "split_names": {"train": "train"},
        "split_files": None,
        "image_extensions": [".png"],
        "mask_extension": ".png",
    }
    settings = settings_of(LayoutSettings, stored, "layout")
    assert (settings.image_suffix, settings.mask_suffix, settings.recursive) == ("", "", False)
