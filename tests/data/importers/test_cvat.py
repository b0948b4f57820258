"""CVAT "Segmentation mask 1.1" import on a hand-made export: labelmap.txt colours to
classes, checked pixel by pixel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.data import DatasetError
from seglab.data.importers import read_cvat

LABELMAP = """# label:color_rgb:parts:actions
background:0,0,0::
dog:61,61,245::
cat:250,50,83::
"""
SIZE = (10, 12)


def colour_mask(boxes: dict[tuple[int, int, int], tuple[slice, slice]]) -> np.ndarray:
    mask = np.zeros((*SIZE, 3), dtype=np.uint8)
    for colour, where in boxes.items():
        mask[where] = colour
    return mask


def cvat_export(root: Path) -> Path:
    """a: a dog box (rows 1..4, cols 2..7: 24 px) and a cat box (rows 6..8, cols 0..2: 9 px);
    b: all background."""
    for folder in (
        "SegmentationClass",
        "SegmentationObject",
        "JPEGImages",
        "ImageSets/Segmentation",
    ):
        (root / folder).mkdir(parents=True)
    (root / "labelmap.txt").write_text(LABELMAP)
    (root / "ImageSets/Segmentation/default.txt").write_text("a\nb\n")
    a = colour_mask(
        {(61, 61, 245): (slice(1, 5), slice(2, 8)), (250, 50, 83): (slice(6, 9), slice(0, 3))}
    )
    Image.fromarray(a).save(root / "SegmentationClass/a.png")
    Image.fromarray(colour_mask({})).save(root / "SegmentationClass/b.png")
    for stem in ("a", "b"):
        Image.new("RGB", (SIZE[1], SIZE[0]), (90, 90, 90)).save(root / f"JPEGImages/{stem}.jpg")
    return root


def test_labelmap_colours_become_classes_in_its_order(tmp_path: Path) -> None:
    export = read_cvat(cvat_export(tmp_path), None, False)
    assert export.classes == ("background", "dog", "cat")
    drawn = {sample.name: sample.draw() for sample in export.samples}
    expected = np.zeros(SIZE, dtype=np.uint8)
    expected[1:5, 2:8] = 1
    expected[6:9, 0:3] = 2
    np.testing.assert_array_equal(drawn["a"], expected)
    assert (drawn["a"] == 1).sum() == 24 and (drawn["a"] == 2).sum() == 9
    np.testing.assert_array_equal(drawn["b"], np.zeros(SIZE, dtype=np.uint8))


def test_a_colour_not_in_the_labelmap_is_refused_by_file(tmp_path: Path) -> None:
    cvat_export(tmp_path)
    odd = colour_mask({(1, 2, 3): (slice(0, 1), slice(0, 1))})
    Image.fromarray(odd).save(tmp_path / "SegmentationClass/b.png")
    (sample,) = [s for s in read_cvat(tmp_path, None, False).samples if s.name == "b"]
    with pytest.raises(DatasetError, match=r"b\.png: colour\(s\) \(1,2,3\) are not in labelmap"):
        sample.draw()


def test_a_mask_without_its_image_is_refused_by_name(tmp_path: Path) -> None:
    cvat_export(tmp_path)
    (tmp_path / "JPEGImages/b.jpg").unlink()
    with pytest.raises(DatasetError, match=r"not found in .*JPEGImages: b\.png; .*--images"):
        read_cvat(tmp_path, None, False)


def test_an_image_without_a_mask_is_refused_unless_kept(tmp_path: Path) -> None:
    cvat_export(tmp_path)
    Image.new("RGB", (5, 4)).save(tmp_path / "JPEGImages/c.jpg")
    with pytest.raises(DatasetError, match=r"have no annotation: c\.jpg.*--keep-unannotated"):
        read_cvat(tmp_path, None, False)
    kept = {s.name: s for s in read_cvat(tmp_path, None, True).samples}
    np.testing.assert_array_equal(kept["c"].draw(), np.zeros((4, 5), dtype=np.uint8))


def test_a_labelmap_line_without_a_colour_is_refused(tmp_path: Path) -> None:
    cvat_export(tmp_path)
    (tmp_path / "labelmap.txt").write_text("background:0,0,0::\ncat::\n")
    with pytest.raises(DatasetError, match=r"labelmap\.txt:2: expected 'name:r,g,b::'"):
        read_cvat(tmp_path, None, False)
