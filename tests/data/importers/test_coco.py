"""COCO JSON import on a hand-made export: each mask checked pixel by pixel against one drawn
by hand and against pycocotools' own ``annToMask`` of the same annotations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.data import DatasetError
from seglab.data.importers import read_coco

mask_api = pytest.importorskip("pycocotools.mask")
COCO = pytest.importorskip("pycocotools.coco").COCO

HEIGHT, WIDTH = 16, 20


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE, encoded here by hand: run lengths of the column-major pixels,
    starting with a run of zeros."""
    flat = mask.flatten(order="F").astype(np.int64)
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0, *counts]
    return {"size": list(mask.shape), "counts": counts}


def box(top: int, bottom: int, left: int, right: int, size=(HEIGHT, WIDTH)) -> np.ndarray:
    mask = np.zeros(size, dtype=np.uint8)
    mask[top:bottom, left:right] = 1
    return mask


def save_image(path: Path, size: tuple[int, int]) -> None:
    pixels = np.random.default_rng(0).integers(0, 255, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def coco_export(root: Path) -> Path:
    """a.png: a cat polygon (48 px) inside a larger dog RLE (96 px, later in the file), and a
    crowd region (compressed RLE) that the dog overlaps by 4 px; b.png: a dog triangle."""
    save_image(root / "a.png", (HEIGHT, WIDTH))
    save_image(root / "b.png", (8, 8))
    crowd = mask_api.encode(np.asfortranarray(box(10, 16, 0, 8)))
    crowd["counts"] = crowd["counts"].decode()
    document = {
        "images": [
            {"id": 1, "file_name": "a.png", "height": HEIGHT, "width": WIDTH},
            {"id": 2, "file_name": "b.png", "height": 8, "width": 8},
        ],
        "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 3, "iscrowd": 0,
             "segmentation": [[2, 2, 10, 2, 10, 8, 2, 8]]},
            {"id": 2, "image_id": 1, "category_id": 7, "iscrowd": 0,
             "segmentation": uncompressed_rle(box(0, 12, 6, 14))},
            {"id": 3, "image_id": 1, "category_id": 7, "iscrowd": 1, "segmentation": crowd},
            {"id": 4, "image_id": 2, "category_id": 7, "iscrowd": 0,
             "segmentation": [[0.5, 0.5, 7.5, 0.5, 0.5, 7.5]]},
        ],
    }  # fmt: skip
    path = root / "instances.json"
    path.write_text(json.dumps(document))
    return path


def masks(export) -> dict[str, np.ndarray]:
    return {sample.name: sample.draw() for sample in export.samples}


def test_classes_follow_category_ids_after_the_background(tmp_path: Path) -> None:
    assert read_coco(coco_export(tmp_path), None, False).classes == ("background", "cat", "dog")


def test_smaller_over_larger_and_crowd_void(tmp_path: Path) -> None:
    mask = masks(read_coco(coco_export(tmp_path), None, False))["a"]
    expected = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    expected[10:16, 0:8] = 255  # crowd: void
    expected[0:12, 6:14] = 2  # the dog over the crowd
    expected[2:8, 2:10] = 1  # the smaller cat over the dog
    np.testing.assert_array_equal(mask, expected)
    assert (mask == 1).sum() == 48 and (mask == 2).sum() == 96 - 24 and (mask == 255).sum() == 44


def test_each_region_is_what_ann_to_mask_decodes(tmp_path: Path) -> None:
    """Exact agreement with pycocotools for polygons and both kinds of RLE: b's one region is
    annToMask's; a's overlap, so annToMask must give the hand-drawn boxes that the pixel-by-pixel
    test above stacks."""
    path = coco_export(tmp_path)
    reference = COCO(str(path))
    drawn = masks(read_coco(path, None, False))
    (triangle,) = reference.loadAnns(reference.getAnnIds(imgIds=[2]))
    np.testing.assert_array_equal(drawn["b"] == 2, reference.annToMask(triangle).astype(bool))
    assert 0 < (drawn["b"] == 2).sum() < 64
    hand = {1: box(2, 8, 2, 10), 2: box(0, 12, 6, 14), 3: box(10, 16, 0, 8)}
    for annotation in reference.loadAnns(reference.getAnnIds(imgIds=[1])):
        np.testing.assert_array_equal(reference.annToMask(annotation), hand[annotation["id"]])


def test_an_image_without_its_file_is_refused_by_name(tmp_path: Path) -> None:
    path = coco_export(tmp_path)
    (tmp_path / "b.png").unlink()
    with pytest.raises(DatasetError, match=r"not found in .*: b\.png; put the images there"):
        read_coco(path, None, False)


def test_an_annotation_of_an_unlisted_image_is_refused(tmp_path: Path) -> None:
    path = coco_export(tmp_path)
    document = json.loads(path.read_text())
    document["annotations"][3]["image_id"] = 9
    path.write_text(json.dumps(document))
    with pytest.raises(DatasetError, match=r"annotation 4 names image_id 9.*export the images"):
        read_coco(path, None, False)


def test_an_image_without_annotations_is_refused_unless_kept(tmp_path: Path) -> None:
    path = coco_export(tmp_path)
    document = json.loads(path.read_text())
    document["annotations"].pop()
    path.write_text(json.dumps(document))
    with pytest.raises(DatasetError, match=r"have no annotation: b\.png.*--keep-unannotated"):
        read_coco(path, None, False)
    kept = masks(read_coco(path, None, True))
    np.testing.assert_array_equal(kept["b"], np.zeros((8, 8), dtype=np.uint8))


def test_an_image_of_another_size_is_refused(tmp_path: Path) -> None:
    path = coco_export(tmp_path)
    save_image(tmp_path / "b.png", (9, 8))
    with pytest.raises(DatasetError, match=r"b\.png: the image is 8x9 but .* says 8x8"):
        read_coco(path, None, False)


def test_an_annotation_of_an_unlisted_category_is_refused(tmp_path: Path) -> None:
    path = coco_export(tmp_path)
    document = json.loads(path.read_text())
    document["annotations"][0]["category_id"] = 5
    path.write_text(json.dumps(document))
    with pytest.raises(DatasetError, match=r"annotation 1 has category_id 5, which is not in"):
        read_coco(path, None, False)


def test_two_images_of_one_stem_are_refused(tmp_path: Path) -> None:
    path = coco_export(tmp_path)
    (tmp_path / "train").mkdir()
    save_image(tmp_path / "train" / "a.png", (8, 8))
    document = json.loads(path.read_text())
    document["images"][1]["file_name"] = "train/a.png"
    path.write_text(json.dumps(document))
    with pytest.raises(DatasetError, match=r"would both be written as a; rename one of them"):
        read_coco(path, None, False)


def test_more_categories_than_a_mask_holds_are_refused(tmp_path: Path) -> None:
    path = coco_export(tmp_path)
    document = json.loads(path.read_text())
    document["categories"] = [{"id": i, "name": f"c{i}"} for i in range(1, 256)]
    path.write_text(json.dumps(document))
    with pytest.raises(DatasetError, match=r"255 labels; masks hold at most 254 .*merge some"):
        read_coco(path, None, False)
