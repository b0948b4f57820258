"""``seglab-data import``: a hand-made LabelMe export written into a new folder, whole or not
at all, with a data config that the printed ``seglab-train`` command trains on."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from PIL import Image
from tiny import CONF_DIR, train_once

from seglab.cli.data import main
from seglab.data import DatasetError
from seglab.data.importers import read_labelme, write_export
from seglab.data.importers.writer import CONFIG_NAME

SIZE = (16, 20)


def labelme_folder(root: Path, images: int = 3) -> Path:
    """``images`` LabelMe files, each a cat rectangle (x 2..7, y 1..6: 36 px) and a dog
    polygon square (x, y 9..13: 25 px) on a 16x20 image."""
    root.mkdir()
    shapes = [
        {"label": "cat", "points": [[2, 1], [7, 6]], "shape_type": "rectangle"},
        {"label": "dog", "points": [[9, 9], [13, 9], [13, 13], [9, 13]], "shape_type": "polygon"},
    ]
    rng = np.random.default_rng(0)
    for index in range(images):
        stem = f"img{index}"
        pixels = rng.integers(0, 255, (*SIZE, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"{stem}.png")
        document = {"shapes": shapes, "imagePath": f"{stem}.png", "imageData": None,
                    "imageHeight": SIZE[0], "imageWidth": SIZE[1]}  # fmt: skip
        (root / f"{stem}.json").write_text(json.dumps(document))
    return root


def expected_mask() -> np.ndarray:
    mask = np.zeros(SIZE, dtype=np.uint8)
    mask[1:7, 2:8] = 1
    mask[9:14, 9:14] = 2
    return mask


def partial_folders(parent: Path) -> list[Path]:
    return [path for path in parent.iterdir() if path.name.endswith(".partial")]


def test_import_writes_images_masks_and_a_data_config(tmp_path: Path, cli) -> None:
    export = labelme_folder(tmp_path / "export")
    out = tmp_path / "dataset"
    code, stdout, err = cli(main, "import", "labelme", str(export), str(out), cwd=tmp_path)
    assert code == 0, err
    assert f"3 images of 3 classes (background, cat, dog) written to {out}" in stdout
    assert f"next: seglab-train --config-dir {out} data={CONFIG_NAME}" in stdout
    assert sorted(p.name for p in (out / "images").iterdir()) == [
        "img0.png",
        "img1.png",
        "img2.png",
    ]
    for index in range(3):
        image = f"img{index}.png"
        assert (out / "images" / image).read_bytes() == (export / image).read_bytes()
        mask = np.asarray(Image.open(out / "masks" / image))
        np.testing.assert_array_equal(mask, expected_mask())
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", [f"data={CONFIG_NAME}", f"hydra.searchpath=[file://{out}]"])
    assert cfg.data._target_ == "seglab.data.FolderDataModule"
    assert cfg.data.root == str(out) and list(cfg.data.classes) == ["background", "cat", "dog"]
    assert cfg.data.splits.val_fraction == 0.2 and cfg.data.ignore_index == 255
    assert partial_folders(tmp_path) == []


def test_an_existing_output_folder_is_refused_by_name(tmp_path: Path, cli) -> None:
    export = labelme_folder(tmp_path / "export")
    out = tmp_path / "dataset"
    out.mkdir()
    (out / "mine.txt").write_text("kept")
    code, _, err = cli(main, "import", "labelme", str(export), str(out), cwd=tmp_path)
    assert code == 2
    assert f"seglab-data: error: {out} already exists" in err and "name another output" in err
    assert [p.name for p in out.iterdir()] == ["mine.txt"]


def test_the_output_folder_is_refused_before_the_export_is_read(tmp_path: Path, cli) -> None:
    out = tmp_path / "dataset"
    out.mkdir()
    code, _, err = cli(main, "import", "labelme", str(tmp_path / "absent"), str(out), cwd=tmp_path)
    assert code == 2 and f"{out} already exists" in err and "absent" not in err


def test_the_writer_never_replaces_a_folder(tmp_path: Path) -> None:
    """write_export on its own (a script's call, or a folder made while the import ran)."""
    export = read_labelme(labelme_folder(tmp_path / "export"), None, False)
    out = tmp_path / "dataset"
    out.mkdir()
    with pytest.raises(DatasetError, match=r"dataset already exists; .*name another output"):
        write_export(export, out, 0.2, "test")
    assert list(out.iterdir()) == [] and partial_folders(tmp_path) == []


def test_an_import_that_fails_while_writing_leaves_nothing(tmp_path: Path, cli) -> None:
    """A CVAT export whose last mask (c, written after a and b) has a colour its labelmap does
    not list: the masks are decoded only as they are written."""
    export = tmp_path / "cvat"
    for folder in ("SegmentationClass", "JPEGImages"):
        (export / folder).mkdir(parents=True)
    (export / "labelmap.txt").write_text("background:0,0,0::\ncat:255,0,0::\n")
    for stem, colour in (("a", (255, 0, 0)), ("b", (255, 0, 0)), ("c", (0, 9, 0))):
        mask = np.zeros((*SIZE, 3), dtype=np.uint8)
        mask[:4, :4] = colour
        Image.fromarray(mask).save(export / "SegmentationClass" / f"{stem}.png")
        Image.new("RGB", (SIZE[1], SIZE[0])).save(export / "JPEGImages" / f"{stem}.jpg")
    out = tmp_path / "dataset"
    code, _, err = cli(main, "import", "cvat", str(export), str(out), cwd=tmp_path)
    assert code == 2 and "c.png: colour(s) (0,9,0) are not in labelmap.txt" in err
    assert not out.exists() and partial_folders(tmp_path) == []


def test_coco_without_pycocotools_names_the_extra(tmp_path: Path, cli, monkeypatch) -> None:
    (tmp_path / "instances.json").write_text(json.dumps({"images": []}))
    monkeypatch.setitem(sys.modules, "pycocotools.mask", None)
    code, _, err = cli(
        main, "import", "coco", str(tmp_path / "instances.json"), "out", cwd=tmp_path
    )
    assert code == 2
    assert "seglab-data import coco needs pycocotools: pip install 'seglab[coco]'" in err


@pytest.mark.slow
def test_the_printed_command_trains_on_the_import(tmp_path: Path, cli) -> None:
    export = labelme_folder(tmp_path / "export", images=5)
    out = tmp_path / "dataset"
    code, stdout, err = cli(main, "import", "labelme", str(export), str(out), cwd=tmp_path)
    assert code == 0, err
    command = shlex.split(stdout.split("next: ")[1].strip())
    assert command[0] == "seglab-train"
    run_dir = train_once(
        tmp_path / "runs",
        *command[1:],
        "data.augment.crop_size=[16,16]",
        "data.loader.batch_size=2",
        "data.loader.num_workers=0",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "model.encoder.widths=[8,16]",
        cwd=tmp_path,
    )
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    split = json.loads((run_dir / "split.json").read_text())
    assert len(split["val"]) == 1 and len(split["train"]) == 4
