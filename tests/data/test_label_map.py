"""``data.label_map``: masks built by hand with known raw values, decoded pixel by pixel; the
refusals of a map that does not fit the classes or the masks; ``seglab-data stats``' report of
the raw values a map leaves out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny import folder_datamodule, save_pair

from seglab.cli.data import main as data_main
from seglab.data import DatasetError, MaskDecoder
from seglab.data.label_map import label_table

CLASSES = ["road", "car", "person"]
# raw label ids as a Cityscapes-like dataset stores them: 7 and 8 are road, 26 is car, 24 is
# person; 0, 1 and 255 are void
RAW = np.array(
    [
        [7, 8, 26, 24],
        [0, 1, 255, 7],
        [26, 26, 24, 8],
    ],
    np.uint8,
)
ROAD, CAR, PERSON, VOID = 0, 1, 2, 255
EXPECTED = np.array(
    [
        [ROAD, ROAD, CAR, PERSON],
        [VOID, VOID, VOID, ROAD],
        [CAR, CAR, PERSON, ROAD],
    ]
)
LABEL_MAP = {"road": [7, 8], "car": [26], "person": 24, "void": [0, 1, 255]}


def decoder(label_map, classes=CLASSES, ignore_index: int = 255) -> MaskDecoder:
    table = label_table(label_map, classes, ignore_index)
    return MaskDecoder(len(classes), ignore_index, label_map=table)


def save_mask(path: Path, mask: np.ndarray) -> Path:
    Image.fromarray(mask).save(path)
    return path


def street_tree(root: Path, masks: dict[str, list[np.ndarray]]) -> Path:
    """``masks`` per split, each with a grey image of its size, in conf/data/folder.yaml's
    layout (uint16 masks are saved as 16-bit PNGs)."""
    for split, split_masks in masks.items():
        for index, mask in enumerate(split_masks):
            image = np.full((*mask.shape, 3), 90, np.uint8)
            save_pair(root, split, f"{split}{index}", image, mask)
    return root


# --- decoding ------------------------------------------------------------------------------


def test_many_raw_values_read_as_one_class_and_several_as_void(tmp_path: Path) -> None:
    mask = save_mask(tmp_path / "mask.png", RAW)
    assert np.array_equal(decoder(LABEL_MAP)(mask), EXPECTED)


def test_void_reads_as_ignore_index_whatever_its_raw_values(tmp_path: Path) -> None:
    mask = save_mask(tmp_path / "mask.png", RAW)
    decoded = decoder(LABEL_MAP, ignore_index=-100)(mask)
    assert np.array_equal(decoded, np.where(EXPECTED == VOID, -100, EXPECTED))


def test_zero_is_void_reads_raw_k_as_class_k_minus_1(tmp_path: Path) -> None:
    # ADE20K: raw 0 is "other", classes 1..150; here 4 classes
    classes = ["wall", "floor", "ceiling", "bed"]
    raw = np.array([[0, 1, 2], [3, 4, 0], [255, 4, 1]], np.uint8)
    mask = save_mask(tmp_path / "mask.png", raw)
    expected = [[VOID, 0, 1], [2, 3, VOID], [VOID, 3, 0]]
    assert decoder("zero_is_void", classes).__call__(mask).tolist() == expected


def test_zero_is_void_refuses_a_raw_value_past_the_classes(tmp_path: Path) -> None:
    mask = save_mask(tmp_path / "mask.png", np.array([[0, 1, 5]], np.uint8))
    message = r"mask\.png: mask has raw values 5 \(1 px\) that data\.label_map=zero_is_void"
    with pytest.raises(DatasetError, match=message + r".*1\.\.4 as the 4 classes"):
        decoder("zero_is_void", ["wall", "floor", "ceiling", "bed"])(mask)


def test_a_mask_whose_0_is_void_is_told_of_zero_is_void(tmp_path: Path) -> None:
    mask = save_mask(tmp_path / "mask.png", np.array([[0, 1, 2], [3, 0, 2]], np.uint8))
    with pytest.raises(DatasetError, match=r"need data\.label_map=zero_is_void"):
        MaskDecoder(3, 255)(mask)


def test_a_map_of_colours_reads_rgb_and_palette_masks(tmp_path: Path) -> None:
    colours = {
        "road": [[128, 64, 128]],
        "car": [[0, 0, 142], [0, 0, 70]],
        "person": [[220, 20, 60]],
        "void": [[0, 0, 0]],
    }
    # the colour of each pixel of EXPECTED; the second car colour in the last row
    rgb = np.zeros((3, 4, 3), np.uint8)
    rgb[EXPECTED == ROAD] = (128, 64, 128)
    rgb[EXPECTED == CAR] = (0, 0, 142)
    rgb[2, 0] = (0, 0, 70)
    rgb[EXPECTED == PERSON] = (220, 20, 60)
    save_mask(tmp_path / "rgb.png", rgb)
    assert np.array_equal(decoder(colours)(tmp_path / "rgb.png"), EXPECTED)
    # the same picture as a palette PNG, VOC's format: its indices are not the classes
    indexed = Image.fromarray(rgb).quantize(colors=8, dither=Image.Dither.NONE)
    assert indexed.mode == "P"
    indexed.save(tmp_path / "palette.png")
    assert np.array_equal(decoder(colours)(tmp_path / "palette.png"), EXPECTED)


def test_a_single_channel_mask_with_a_map_of_colours_is_refused(tmp_path: Path) -> None:
    mask = save_mask(tmp_path / "mask.png", RAW)
    colours = {"road": [[1, 2, 3]], "car": [[4, 5, 6]], "person": [[7, 8, 9]]}
    with pytest.raises(DatasetError, match=r"mask\.png: mask is single-channel .* gives colours"):
        decoder(colours)(mask)


def test_16_bit_masks_read_raw_ids_past_255_unclipped(tmp_path: Path) -> None:
    # COCO-Stuff-like ids: 300 and 1000/1001 are classes, 0 and 65535 void
    raw = np.array([[300, 1000, 1001], [65535, 0, 300], [300, 1001, 300]], np.uint16)
    mask = save_mask(tmp_path / "mask.png", raw)
    assert Image.open(mask).mode in ("I;16", "I")
    label_map = {"grass": [300], "sky": [1000, 1001], "void": [0, 65535]}
    decoded = decoder(label_map, ["grass", "sky"])(mask)
    assert decoded.tolist() == [[0, 1, 1], [VOID, VOID, 0], [0, 1, 0]]
    # 300 clipped or wrapped to 8 bits (255 or 44) would be void or uncovered: it is not
    raw[0, 0] = 44
    save_mask(mask, raw)
    with pytest.raises(DatasetError, match=r"raw values 44 \(1 px\)"):
        decoder(label_map, ["grass", "sky"])(mask)


def test_32_bit_masks_read_values_past_16_bits(tmp_path: Path) -> None:
    raw = np.array([[70000, 5], [65536, 70000]], np.int32)
    Image.fromarray(raw).save(tmp_path / "mask.tif")
    assert Image.open(tmp_path / "mask.tif").mode == "I"
    label_map = {"grass": [70000], "sky": [5], "void": [65536]}
    decoded = decoder(label_map, ["grass", "sky"])(tmp_path / "mask.tif")
    assert decoded.tolist() == [[0, 1], [VOID, 0]]


def test_16_bit_masks_pass_the_datamodule_pixel_by_pixel(tmp_path: Path) -> None:
    raw = np.array([[300, 1000], [65535, 300]], np.uint16)
    root = street_tree(tmp_path / "stuff", {"train": [raw], "val": [raw]})
    label_map = {"grass": [300], "sky": [1000], "void": [65535]}
    datamodule = folder_datamodule(root, classes=["grass", "sky"], label_map=label_map)
    datamodule.setup("fit")
    _, mask, _ = datamodule.dataset("val")[0]
    assert mask.tolist() == [[0, 1], [VOID, 0]]


def test_the_datamodule_reads_a_label_map_pixel_by_pixel(tmp_path: Path) -> None:
    root = street_tree(tmp_path / "streets", {"train": [RAW], "val": [RAW]})
    datamodule = folder_datamodule(root, classes=CLASSES, label_map=LABEL_MAP)
    datamodule.setup("fit")
    _, mask, _ = datamodule.dataset("val")[0]
    assert np.array_equal(mask.numpy(), EXPECTED)
    assert datamodule.class_pixel_counts("train")[0].tolist() == [[4, 3, 2]]


# --- what the setup scan refuses ----------------------------------------------------------


def test_a_raw_value_the_map_does_not_cover_is_refused_at_setup(tmp_path: Path) -> None:
    uncovered = RAW.copy()
    uncovered[0, :2] = 33
    root = street_tree(tmp_path / "streets", {"train": [RAW, uncovered], "val": [RAW]})
    with pytest.raises(DatasetError) as error:
        folder_datamodule(root, classes=CLASSES, label_map=LABEL_MAP).setup("fit")
    message = str(error.value)
    assert "train1.png: mask has raw values 33 (2 px) that data.label_map does not cover" in message
    assert "give each to a class (data.label_map.<class>: [values]) or to data.label_map.void" in (
        message
    )
    assert "train0.png" not in message


def test_a_class_the_map_gives_no_pixel_names_the_map(tmp_path: Path) -> None:
    no_person = np.where(RAW == 24, 26, RAW).astype(np.uint8)
    root = street_tree(tmp_path / "streets", {"train": [no_person], "val": [no_person]})
    message = r"class 'person' has no pixel .* check that data\.label_map gives the class"
    with pytest.raises(DatasetError, match=message):
        folder_datamodule(root, classes=CLASSES, label_map=LABEL_MAP).setup("fit")


def test_a_void_heavy_split_names_the_maps_void_values(tmp_path: Path) -> None:
    heavy = np.zeros((4, 4), np.uint8)
    heavy[0] = [7, 26, 24, 8]
    root = street_tree(tmp_path / "streets", {"train": [RAW], "val": [heavy]})
    message = r"75% of the pixels of the val split are void: check the values data\.label_map"
    with pytest.raises(DatasetError, match=message):
        folder_datamodule(root, classes=CLASSES, label_map=LABEL_MAP).setup("fit")


# --- what a map must say --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label_map", "message"),
    [
        ("zero_void", r"data\.label_map='zero_void' must be zero_is_void"),
        ({**LABEL_MAP, "bus": [28]}, r"data\.label_map\.bus is neither a class of data\.classes"),
        ({"road": [7], "car": [26]}, r"no raw value to class 'person'; add data\.label_map\.pers"),
        ({**LABEL_MAP, "car": [26, 7]}, r"raw value 7 to both 'road' and 'car'"),
        ({**LABEL_MAP, "car": [[0, 0, 142]]}, r"mixes raw values and \[r, g, b\] colours"),
        ({**LABEL_MAP, "car": ["26"]}, r"data\.label_map\.car=\['26'\] must list raw mask values"),
        ({**LABEL_MAP, "car": [-1]}, r"data\.label_map\.car=\[-1\] must list raw mask values"),
    ],
)
def test_a_map_that_does_not_fit_the_classes_is_refused(label_map, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        label_table(label_map, CLASSES, 255)


def test_a_class_named_void_is_refused_with_a_map() -> None:
    with pytest.raises(ValueError, match=r"names a class 'void'.*rename the class"):
        label_table({"void": [0], "car": [1]}, ["void", "car"], 255)


def test_a_map_excludes_mask_values_and_multilabel_masks(tmp_path: Path) -> None:
    root = street_tree(tmp_path / "streets", {"train": [RAW], "val": [RAW]})
    options = {"classes": CLASSES, "label_map": LABEL_MAP}
    with pytest.raises(ValueError, match=r"data\.mask_values and data\.label_map both say"):
        folder_datamodule(root, **options, mask_values=[7, 26, 24])
    with pytest.raises(ValueError, match=r"mode=multilabel .* set data\.label_map=null"):
        folder_datamodule(root, **options, mode="multilabel")


# --- seglab-data stats --------------------------------------------------------------------


def street_stats(cli, root: Path, tmp_path: Path) -> str:
    """``seglab-data stats`` of the street tree under its label map; its standard output."""
    code, out, err = cli(
        data_main,
        "stats",
        "data=folder",
        f"data.root={root}",
        "data.classes=[road,car,person]",
        "data.label_map={road:[7,8],car:[26],person:[24],void:[0,1,255]}",
        f"paths.output_root={tmp_path / 'runs'}",
        cwd=tmp_path,
    )
    assert code == 0, err[-3000:]
    return out


def test_data_stats_reports_the_raw_values_the_map_leaves_out(tmp_path: Path, cli) -> None:
    first, second = RAW.copy(), RAW.copy()
    # two pixels of 33 here, one there, and 25 (between car's 26 and person's 24, so no near
    # class may take it) in the second mask only
    first[0, :2] = 33
    second[0, 0] = 33
    second[2, :] = 25
    root = street_tree(tmp_path / "streets", {"train": [first, second, RAW], "val": [RAW]})
    out = street_stats(cli, root, tmp_path)
    assert "2 raw value(s) that the label map does not cover" in out
    lines = out.splitlines()
    header = next(index for index, line in enumerate(lines) if line.startswith("raw value"))
    assert lines[header + 1].split()[:4] == ["25", "4", "1", str(root / "train/masks/train1.png")]
    assert lines[header + 2].split()[:4] == ["33", "3", "2", str(root / "train/masks/train0.png")]
    (run_dir,) = (tmp_path / "runs" / "data_stats").iterdir()
    stats = json.loads((run_dir / "class_stats.json").read_text())
    assert [(row["value"], row["pixels"], row["masks"]) for row in stats["uncovered"]] == [
        (25, 4, 1),
        (33, 3, 2),
    ]
    # the class counts leave the uncovered pixels out: road 4+4+4 less 2+2, car 3+3+3 less 2,
    # person 2+2+2 less 1
    assert stats["pixel_count"] == [8, 7, 5]


def test_data_stats_lists_no_uncovered_value_where_the_map_covers_all(tmp_path: Path, cli) -> None:
    root = street_tree(tmp_path / "streets", {"train": [RAW], "val": [RAW]})
    out = street_stats(cli, root, tmp_path)
    assert "does not cover" not in out
    (run_dir,) = (tmp_path / "runs" / "data_stats").iterdir()
    assert json.loads((run_dir / "class_stats.json").read_text())["uncovered"] == []


# --- the map travels with the checkpoint ---------------------------------------------------


@pytest.mark.slow  # trains one epoch, then scores the checkpoint
def test_the_checkpoint_keeps_the_map_and_eval_reads_the_masks_by_it(tmp_path: Path, cli) -> None:
    from seglab.cli.eval import main as eval_main
    from seglab.cli.train import main as train_main

    big = np.kron(RAW, np.ones((4, 4), np.uint8))  # 12x16, every raw value in blocks
    root = street_tree(tmp_path / "streets", {"train": [big, big], "val": [big]})
    label_map = "data.label_map={road:[7,8],car:[26],person:[24],void:[0,1,255]}"
    quiet = ["trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]
    code, _, err = cli(
        train_main,
        "data=folder",
        f"data.root={root}",
        "data.classes=[road,car,person]",
        label_map,
        "data.augment.crop_size=null",
        "data.augment.scale_range=null",
        "data.loader.batch_size=2",
        "data.loader.num_workers=0",
        "model.encoder.widths=[8,16]",
        "trainer.max_epochs=1",
        *quiet,
        f"paths.output_root={tmp_path / 'runs'}",
        cwd=tmp_path,
    )
    assert code == 0, err[-3000:]
    (run_dir,) = (tmp_path / "runs" / "train").iterdir()
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    stored = checkpoint["seglab"]["config"]["data"]["label_map"]
    assert stored == {"road": [7, 8], "car": [26], "person": [24], "void": [0, 1, 255]}
    # raw 7, 8, 24 and 26 are no class index: only the stored map reads these masks
    code, _, err = cli(
        eval_main,
        f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
        "split=val",
        *quiet,
        f"paths.output_root={tmp_path / 'runs'}",
        cwd=tmp_path,
    )
    assert code == 0, err[-3000:]
    (metrics,) = (tmp_path / "runs" / "eval").glob("*/metrics.json")
    assert list(json.loads(metrics.read_text())["per_class"]) == CLASSES
