"""Image/mask folder datasets: layout, mask decoding, setup checks, caching and statistics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny import UNAUGMENTED, binary_folder, data_options, portrait_folder, save_pair, with_options
from torchvision.transforms.v2 import functional as TF

from seglab.data import CamVidDataModule, DatasetError, FolderDataModule, MaskDecoder
from seglab.data import camvid as camvid_module
from seglab.data import scan as scan_module
from seglab.data.stats import ClassStatistics, class_statistics, format_statistics
from seglab.data.transforms import pad_collate


def write_pair(root: Path, split: str, stem: str, mask: np.ndarray, ext: str = ".png") -> None:
    """An RGB image whose red channel repeats the mask, and the mask, in the default layout."""
    rgb = np.stack(
        [mask.astype(np.uint8), np.full_like(mask, 7, np.uint8), np.zeros_like(mask, np.uint8)], -1
    )
    save_pair(root, split, stem, rgb, mask.astype(np.uint8), image_suffix=ext)


def binary_mask(height: int = 12, width: int = 16, top: int = 4) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    mask[top:, : width // 2] = 255
    return mask


@pytest.fixture
def binary_root(tmp_path: Path) -> Path:
    root = tmp_path / "cells"
    for split, count in (("train", 4), ("val", 2)):
        for index in range(count):
            write_pair(root, split, f"{split}{index}", binary_mask(top=index))
    return root


def make(root: Path, cache_dir: Path | None = None, **options) -> FolderDataModule:
    """`tiny.binary_folder` on ``root`` without augmentation, scanning into ``cache_dir``."""
    plain = with_options(
        {"cache_dir": cache_dir, "loader": {"eval_batch_size": None}}, **UNAUGMENTED
    )
    return binary_folder(root, **with_options(plain, **options))


# --- layout and decoding ------------------------------------------------------------------


def test_binary_masks_read_as_class_indices(binary_root: Path) -> None:
    datamodule = make(binary_root)
    datamodule.setup("fit")
    image, mask, name = datamodule.dataset("val")[0]
    assert name == str(binary_root / "val" / "images" / "val0.png")
    assert image.shape == (3, 12, 16) and image.dtype == torch.float32
    assert mask.dtype == torch.int64
    assert torch.equal(mask, torch.from_numpy(binary_mask(top=0) // 255).long())
    missing = datamodule.split_unavailable("test")
    assert missing.startswith(f"test split folder {binary_root / 'test' / 'images'}"), missing
    assert missing.endswith("does not exist"), missing


def test_training_crop_pads_with_void_and_batches_have_one_size(binary_root: Path) -> None:
    datamodule = make(binary_root, augment={"crop_size": [16, 20], "scale_range": [0.5, 1.5]})
    datamodule.setup("fit")
    images, masks, names = next(iter(datamodule.train_dataloader()))
    assert images.shape == (2, 3, 16, 20) and masks.shape == (2, 16, 20)
    assert len(set(names)) == 2
    assert set(names) <= {str(image) for image, _ in datamodule.pairs("train")}
    assert set(masks.unique().tolist()) <= {0, 1, 255}


def test_eval_scale_resizes_images_and_keeps_masks(binary_root: Path) -> None:
    datamodule = make(binary_root, eval_scale=0.5)
    image, mask, _ = datamodule.dataset("val")[0]
    assert image.shape == (3, 6, 8) and mask.shape == (12, 16)


def test_pad_collate_pads_masks_with_void() -> None:
    samples = [
        (torch.ones(3, 2, 3), torch.zeros(4, 6, dtype=torch.long), "a.png"),
        (torch.ones(3, 3, 2), torch.ones(6, 4, dtype=torch.long), "b.png"),
    ]
    images, masks, names = pad_collate(samples, ignore_index=255)
    assert names == ["a.png", "b.png"]
    assert images.shape == (2, 3, 3, 3) and masks.shape == (2, 6, 6)
    assert (
        images[0, :, 2].eq(0).all() and masks[0, 4:].eq(255).all() and masks[1, :, 4:].eq(255).all()
    )


def test_rgb_masks_map_through_the_palette(tmp_path: Path) -> None:
    red, green = (200, 0, 0), (0, 200, 0)
    colours = np.zeros((4, 4, 3), np.uint8)
    colours[:2] = red
    colours[2:] = green
    colours[0, 0] = (1, 2, 3)
    Image.fromarray(colours).save(tmp_path / "mask.png")
    decoder = MaskDecoder(2, 255, palette=[red, green], void_colours=[(1, 2, 3)])
    expected = np.array([[255, 0, 0, 0], [0] * 4, [1] * 4, [1] * 4])
    assert np.array_equal(decoder(tmp_path / "mask.png"), expected)
    with pytest.raises(DatasetError, match=r"mask\.png: mask has colours \[\[1, 2, 3\]\]"):
        MaskDecoder(2, 255, palette=[red, green])(tmp_path / "mask.png")
    with pytest.raises(DatasetError, match="data.palette is not set"):
        MaskDecoder(2, 255)(tmp_path / "mask.png")


def test_palette_mode_masks_read_their_indices(tmp_path: Path) -> None:
    mask = Image.fromarray(np.array([[0, 1], [2, 255]], np.uint8), mode="P")
    mask.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [9] * 759)
    mask.save(tmp_path / "mask.png")
    assert MaskDecoder(3, 255)(tmp_path / "mask.png").tolist() == [[0, 1], [2, 255]]


@pytest.mark.parametrize(("mode", "channels"), [("L", 3), ("RGBA", 3), ("P", 3), ("RGB", 1)])
def test_images_are_converted_to_the_input_channels(
    tmp_path: Path, mode: str, channels: int
) -> None:
    root = tmp_path / "data"
    write_pair(root, "train", "a", binary_mask())
    write_pair(root, "val", "a", binary_mask())
    Image.open(root / "val" / "images" / "a.png").convert(mode).save(
        root / "val" / "images" / "a.png"
    )
    stats = {"mean": [0.5] * channels, "std": [0.5] * channels}
    image, _, _ = make(root, in_channels=channels, **stats).dataset("val")[0]
    assert image.shape == (channels, 12, 16)


def test_split_files_choose_the_images(binary_root: Path) -> None:
    (binary_root / "val.txt").write_text("val1\n")
    datamodule = make(binary_root, layout={"split_files": {"val": "val.txt"}})
    assert [image.name for image, _ in datamodule.pairs("val")] == ["val1.png"]
    (binary_root / "val.txt").write_text("val1\nnope\n")
    with pytest.raises(DatasetError, match=r"val\.txt lists 1 stem\(s\) with no image.*'nope'"):
        make(binary_root, layout={"split_files": {"val": "val.txt"}}).pairs("val")


# --- a dataset without split folders ------------------------------------------------------


def test_flat_folders_need_a_val_fraction(tmp_path: Path) -> None:
    root = portrait_folder(tmp_path / "portraits")
    message = r"portraits/images holds all the images, .* set data\.splits\.val_fraction=0\.2"
    with pytest.raises(DatasetError, match=message):
        make(root).setup("fit")
    with pytest.raises(DatasetError, match=message):
        make(root, layout={"image_dir": "images", "mask_dir": "masks"}).setup("fit")


def test_flat_folders_validate_on_a_recorded_seeded_share(tmp_path: Path) -> None:
    root = portrait_folder(tmp_path / "portraits")
    record = tmp_path / "run" / "split.json"
    datamodule = make(root, splits={"val_fraction": 0.2, "split_record": record})
    datamodule.setup("fit")
    val = [Path(datamodule.dataset("val")[i][2]).stem for i in range(2)]
    train = [Path(datamodule.dataset("train")[i][2]).stem for i in range(8)]
    assert sorted(val + train) == [f"p{i:03d}" for i in range(10)]
    assert json.loads(record.read_text()) == {
        "val_fraction": 0.2,
        "split_seed": 0,
        "val": val,
        "train": train,
    }
    assert datamodule.split_unavailable("test").startswith("no test split: ")
    again = make(root, splits={"val_fraction": 0.2})
    assert [again.dataset("val")[i][2] for i in range(2)] == [
        datamodule.dataset("val")[i][2] for i in range(2)
    ]
    seeds = {
        tuple(
            make(root, splits={"val_fraction": 0.2, "split_seed": seed}).split_plan().validation.val
        )
        for seed in range(4)
    }
    assert len(seeds) > 1, "the seed picks the val images"


def test_val_fraction_cuts_the_train_split_of_split_folders(binary_root: Path) -> None:
    datamodule = make(binary_root, splits={"val_fraction": 0.5})
    names = {datamodule.dataset("val")[i][2] for i in range(2)}
    assert {Path(name).parent.parent.name for name in names} == {"train"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"val_fraction": 1.0}, r"data\.splits\.val_fraction=1\.0 must be in \(0, 1\)"),
        (
            {"folds": 5, "fold": 0},
            r"data\.splits\.val_fraction=0\.2 and data\.splits\.folds=5 both choose",
        ),
        (
            {"holdout": "p00"},
            r"data\.splits\.holdout=p00 and data\.splits\.val_fraction=0\.2 both choose",
        ),
    ],
)
def test_val_fraction_refuses_other_cuts_naming_both_keys(
    tmp_path: Path, options: dict, message: str
) -> None:
    root = portrait_folder(tmp_path / "portraits")
    with pytest.raises(ValueError, match=message):
        make(root, splits={"val_fraction": 0.2, **options})


def test_a_labelled_subset_comes_from_the_images_trained_on(tmp_path: Path) -> None:
    root = portrait_folder(tmp_path / "portraits")
    datamodule = make(
        root, splits={"val_fraction": 0.2}, few_labels={"labeled_count": 3, "labeled_record": None}
    )
    datamodule.setup("fit")
    split, labeled = datamodule.split_plan().validation, datamodule.split_plan().labeled
    assert len(labeled.labeled) == 3 and set(labeled.labeled) <= set(split.train)
    assert not set(labeled.unlabeled) & set(split.val)


# --- masks at another size than their image -----------------------------------------------


def test_smaller_masks_are_refused_naming_the_option_that_aligns_them(tmp_path: Path) -> None:
    root = portrait_folder(tmp_path / "portraits", half_size=[1, 4])
    message = (
        r"p001\.jpg: image is 24x32 \(WxH\) but its mask .*p001\.png is 12x16; set "
        r"data\.resize_images_to_masks=true"
    )
    with pytest.raises(DatasetError, match=message):
        make(root, splits={"val_fraction": 0.2}).setup("fit")


def test_resize_images_to_masks_resizes_the_image_and_never_the_mask(tmp_path: Path) -> None:
    root = portrait_folder(tmp_path / "portraits", half_size=[1])
    datamodule = make(root, splits={"val_fraction": 0.2}, resize_images_to_masks=True)
    datamodule.setup("fit")
    dataset = datamodule.dataset("train").dataset
    image, mask, name = dataset[1]
    assert Path(name).stem == "p001"
    assert image.shape == (3, 16, 12) and mask.shape == (16, 12)
    assert set(mask.unique().tolist()) == {0, 1}, "the mask keeps its class values"
    with Image.open(root / "images" / "p001.jpg") as photo:
        expected = TF.resize(TF.pil_to_tensor(photo), [16, 12], antialias=True)
    assert torch.allclose(datamodule.denormalize(image) * 255, expected.float(), atol=1.0)
    full, full_mask, _ = dataset[0]
    assert full.shape == (3, 32, 24) and full_mask.shape == (32, 24)


def test_masks_of_another_aspect_ratio_stay_refused(tmp_path: Path) -> None:
    root = portrait_folder(tmp_path / "portraits")
    Image.new("L", (12, 12)).save(root / "masks" / "p002.png")
    with pytest.raises(DatasetError, match=r"p002\.png is 12x12, another aspect ratio"):
        make(root, splits={"val_fraction": 0.2}, resize_images_to_masks=True).setup("fit")


# --- bad input: every error names the file ------------------------------------------------


def test_image_without_mask_is_named(binary_root: Path) -> None:
    (binary_root / "train" / "masks" / "train2.png").unlink()
    with pytest.raises(DatasetError, match=r"image\(s\) without a mask .*train2\.png"):
        make(binary_root).setup("fit")


def test_mask_without_image_is_named(binary_root: Path) -> None:
    (binary_root / "val" / "images" / "val1.png").unlink()
    with pytest.raises(DatasetError, match=r"mask\(s\) without an image .*val1\.png"):
        make(binary_root).setup("fit")


def test_size_mismatch_is_named(binary_root: Path) -> None:
    Image.fromarray(binary_mask(height=10)).save(binary_root / "train" / "masks" / "train3.png")
    with pytest.raises(DatasetError, match=r"train3\.png: image is 16x12 \(WxH\) but its mask"):
        make(binary_root).setup("fit")


def test_mask_value_that_is_no_class_is_named(binary_root: Path) -> None:
    mask = binary_mask()
    mask[0, 0] = 128
    Image.fromarray(mask).save(binary_root / "val" / "masks" / "val0.png")
    message = r"val0\.png: mask has values \[128\] that are neither data\.mask_values=\[0, 255\]"
    with pytest.raises(DatasetError, match=message):
        make(binary_root).setup("fit")


def test_truncated_image_is_named(binary_root: Path) -> None:
    path = binary_root / "train" / "images" / "train1.jpg"
    (binary_root / "train" / "images" / "train1.png").unlink()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (12, 16, 3), np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DatasetError, match=r"train1\.jpg: unreadable or truncated image"):
        make(binary_root).setup("fit")


def test_unreadable_mask_is_named(binary_root: Path) -> None:
    (binary_root / "train" / "masks" / "train0.png").write_text("not a png")
    with pytest.raises(DatasetError, match=r"train0\.png: unreadable or truncated mask"):
        make(binary_root).setup("fit")


def test_empty_split_is_named(binary_root: Path) -> None:
    for path in (binary_root / "val").rglob("*.png"):
        path.unlink()
    with pytest.raises(DatasetError, match=r"the val split is empty: .* in .*val/images"):
        make(binary_root).setup("fit")


def test_missing_root_is_named(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"data\.root=.*nowhere is not a folder"):
        make(tmp_path / "nowhere")


# --- caching ------------------------------------------------------------------------------


def test_scan_is_cached_until_a_file_changes(
    binary_root: Path, tmp_path: Path, monkeypatch
) -> None:
    cache = tmp_path / "cache"
    make(binary_root, cache).setup("fit")
    assert len(list((cache / "scans").iterdir())) == 2
    assert not any(path.is_relative_to(binary_root) for path in cache.rglob("*"))

    def no_rescan(path: Path, reader: object) -> tuple[int, int]:
        raise AssertionError(f"rescanned {path}")

    monkeypatch.setattr(scan_module, "read_image_size", no_rescan)
    make(binary_root, cache).setup("fit")
    write_pair(binary_root, "val", "val0", binary_mask(top=9))
    with pytest.raises(AssertionError, match="rescanned"):
        make(binary_root, cache).setup("fit")


# --- statistics ---------------------------------------------------------------------------


def test_class_statistics_follow_median_frequency_balancing() -> None:
    # image 0: 6 px of class 0, 2 of class 1 (8 px); image 1: 4 of class 0, 2 void (6 px);
    # image 2: 1 of class 2, 3 of class 0 (4 px)
    class_pixels = torch.tensor([[6, 2, 0], [4, 0, 0], [3, 0, 1]])
    image_pixels = torch.tensor([8, 6, 4])
    stats = class_statistics(["a", "b", "c"], class_pixels, image_pixels)
    freq = [13 / 18, 2 / 8, 1 / 4]
    median = sorted(freq)[1]
    assert stats.pixel_count == [13, 2, 1]
    assert stats.pixel_frequency == pytest.approx([13 / 16, 2 / 16, 1 / 16])
    assert stats.image_share == pytest.approx([1.0, 1 / 3, 1 / 3])
    assert stats.median_frequency_weights == pytest.approx([median / f for f in freq])


def test_absent_class_gets_weight_zero() -> None:
    stats = class_statistics(["a", "b", "c"], torch.tensor([[3, 1, 0]]), torch.tensor([4]))
    assert stats.median_frequency_weights == pytest.approx([(0.75 + 0.25) / 2 / 0.75, 2.0, 0.0])


def test_statistics_print_as_an_aligned_table() -> None:
    stats = ClassStatistics(
        classes=["road", "sky"],
        pixel_count=[300, 100],
        pixel_frequency=[0.75, 0.25],
        image_share=[1.0, 0.5],
        median_frequency_weights=[0.5, 1.5],
    )
    assert format_statistics(stats).splitlines() == [
        "class  pixels  frequency  images  median-freq weight",
        "road      300     0.7500   1.000              0.5000",
        "sky       100     0.2500   0.500              1.5000",
    ]


def test_folder_counts_come_from_the_files(binary_root: Path, tmp_path: Path) -> None:
    class_pixels, image_pixels = make(binary_root, tmp_path / "c").class_pixel_counts("train")
    cells = [(12 - top) * 8 for top in range(4)]
    assert class_pixels[:, 1].tolist() == cells
    assert class_pixels[:, 0].tolist() == [192 - c for c in cells]
    assert image_pixels.tolist() == [192] * 4


# --- CamVid -------------------------------------------------------------------------------


def test_camvid_without_a_root_names_the_key_and_the_script(monkeypatch) -> None:
    monkeypatch.setattr(camvid_module, "default_root", lambda: None)
    with pytest.raises(DatasetError, match=r"data\.root is not set.*seglab-data download camvid"):
        CamVidDataModule()


def test_camvid_layout_and_void(tmp_path: Path) -> None:
    root = tmp_path / "camvid"
    for split in ("train", "val"):
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
        Image.new("RGB", (8, 6)).save(root / split / "f.jpg")
        Image.fromarray(np.full((6, 8), 11, np.uint8)).save(root / f"{split}annot" / "f.png")
    datamodule = CamVidDataModule(**{**data_options("camvid"), "root": root, "cache_dir": None})
    _, mask, _ = datamodule.dataset("val")[0]
    assert datamodule.num_classes == 11 and mask.eq(11).all()
    assert "test split folder" in datamodule.split_unavailable("test")
