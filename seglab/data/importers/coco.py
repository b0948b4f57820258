"""COCO JSON (instances or stuff): polygons and RLE decoded through pycocotools.

Each image's mask is drawn from its annotations as pycocotools' ``annToMask`` draws each one:
a polygon through pycocotools' own rasteriser (``frPyObjects``, the pixels whose centre lies
inside), an RLE as it is. Crowd regions (``iscrowd: 1``, a group of objects no one outlined
alone) are void. Overlaps: COCO stores no depth order, so smaller regions are drawn over
larger ones, crowd regions first: an object lying on another (a cup on a table, whose outline
often covers the cup) keeps its pixels, and a crowd's void gives way to any object outlined
in it. Ties keep the annotations' order in the file. Categories become classes 1..K in the
order of their ids; 0 is the background.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from seglab.data.importers.dataset import (
    VOID,
    Export,
    Sample,
    check_size,
    refuse_many_classes,
    refuse_missing_images,
    refuse_unannotated,
    unique_names,
)
from seglab.data.metadata import DatasetError
from seglab.extras import require


def read_coco(export: Path, images: Path | None, keep_unannotated: bool) -> Export:
    """The COCO file ``export``, its images in ``images`` (default: the file's folder)."""
    mask_api = require("pycocotools.mask", "seglab-data import coco")
    document = _load(export)
    folder = images or export.parent
    categories = sorted(document.get("categories", []), key=lambda category: category["id"])
    refuse_many_classes(export, len(categories))
    index = {category["id"]: position + 1 for position, category in enumerate(categories)}
    by_image: dict[Any, list[dict]] = defaultdict(list)
    entries = {entry["id"]: entry for entry in document["images"]}
    for annotation in document.get("annotations", []):
        if annotation.get("image_id") not in entries:
            raise DatasetError(
                f"{export}: annotation {annotation.get('id')} names image_id "
                f"{annotation.get('image_id')}, which is not in its images list; "
                "export the images with their annotations"
            )
        if annotation.get("category_id") not in index and not annotation.get("iscrowd"):
            raise DatasetError(
                f"{export}: annotation {annotation.get('id')} has category_id "
                f"{annotation.get('category_id')}, which is not in its categories list"
            )
        by_image[annotation["image_id"]].append(annotation)
    unannotated = [entry["file_name"] for key, entry in entries.items() if not by_image[key]]
    refuse_unannotated(export, unannotated, keep_unannotated)
    missing = [
        entry["file_name"]
        for entry in entries.values()
        if not (folder / entry["file_name"]).is_file()
    ]
    refuse_missing_images(export, missing, folder)
    samples = []
    for key, entry in entries.items():
        path = folder / entry["file_name"]
        size = check_size(path, (entry["height"], entry["width"]), f"{export} (image {key})")
        samples.append(
            Sample(
                name=Path(entry["file_name"]).stem,
                image=path,
                size=size,
                draw=_drawer(mask_api, by_image[key], index, size),
            )
        )
    classes = ("background", *(category["name"] for category in categories))
    return Export("COCO", classes, unique_names(export, samples))


def _load(export: Path) -> dict:
    try:
        document = json.loads(export.read_text())
    except (OSError, ValueError) as error:
        raise DatasetError(f"{export}: not a readable COCO JSON file ({error})") from None
    if not isinstance(document, dict) or "images" not in document:
        raise DatasetError(
            f"{export}: no 'images' list, so not a COCO JSON file; "
            "export the annotations in COCO format"
        )
    return document


def region(mask_api: Any, segmentation: Any, size: tuple[int, int]) -> np.ndarray:
    """One annotation's ``segmentation`` as a boolean mask, decoded as ``annToMask`` does:
    polygons and uncompressed RLE go through ``frPyObjects`` (polygons merged), compressed
    RLE is decoded as it is."""
    height, width = size
    if isinstance(segmentation, list):
        rle = mask_api.merge(mask_api.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get("counts"), list):
        rle = mask_api.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    return mask_api.decode(rle).astype(bool)


def _drawer(mask_api: Any, annotations: list[dict], index: dict, size: tuple[int, int]):
    def draw() -> np.ndarray:
        regions = [
            (annotation, region(mask_api, annotation["segmentation"], size))
            for annotation in annotations
        ]
        crowd = [item for item in regions if item[0].get("iscrowd")]
        objects = [item for item in regions if not item[0].get("iscrowd")]
        # sorted is stable: equal areas keep the file's order
        objects.sort(key=lambda item: -int(item[1].sum()))
        mask = np.zeros(size, dtype=np.uint8)
        for _, pixels in crowd:
            mask[pixels] = VOID
        for annotation, pixels in objects:
            mask[pixels] = index[annotation["category_id"]]
        return mask

    return draw
