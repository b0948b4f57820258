"""LabelMe JSON: a folder of ``<image>.json`` files beside (or pointing at) their images.

Each file lists ``shapes`` with a ``label``, ``points`` in pixel coordinates (x, y) and a
``shape_type``, drawn as LabelMe documents them, with PIL's ImageDraw (outline and inside
filled, so every pixel the edge passes through counts): ``polygon`` (its vertices),
``rectangle`` (two opposite corners), ``circle`` (its centre, then a point on its rim). Lines
and points outline no region and are refused. Overlaps: later shapes are drawn over earlier
ones, the order LabelMe draws them on screen, so the mask is what the annotator saw. The image
is ``imagePath`` (relative to the JSON file), or the ``imageData`` it embeds when that file is
missing. A file with no shapes is an image annotated as all background.
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from seglab.data.importers.dataset import (
    Export,
    Sample,
    check_size,
    class_list,
    image_size,
    refuse_missing_images,
    refuse_unannotated,
    unique_names,
)
from seglab.data.metadata import DatasetError

SHAPES = ("polygon", "rectangle", "circle")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def read_labelme(export: Path, classes: Sequence[str] | None, keep_unannotated: bool) -> Export:
    """The LabelMe folder ``export`` (or one JSON file)."""
    files = sorted(export.glob("*.json")) if export.is_dir() else [export]
    if not files:
        raise DatasetError(f"{export}: no LabelMe .json files; point at the folder LabelMe saved")
    documents = {path: _load(path) for path in files}
    annotated = set()
    missing = []
    for path, document in documents.items():
        image = path.parent / document["imagePath"]
        annotated.add(image.resolve())
        if not image.is_file() and not document.get("imageData"):
            missing.append(str(image))
    refuse_missing_images(export, missing, export if export.is_dir() else export.parent)
    # one JSON file given: the images beside it are not its business
    unannotated = [
        path
        for path in (sorted(export.iterdir()) if export.is_dir() else [])
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.resolve() not in annotated
    ]
    refuse_unannotated(export, [path.name for path in unannotated], keep_unannotated)
    labels = {shape["label"] for document in documents.values() for shape in document["shapes"]}
    names = class_list(export, labels, classes)
    index = {name: position for position, name in enumerate(names)}
    samples = [_sample(path, document, index) for path, document in documents.items()]
    samples += [_background(path) for path in unannotated]
    return Export("LabelMe", names, unique_names(export, samples))


def _load(path: Path) -> dict:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DatasetError(f"{path}: not a readable LabelMe JSON file ({error})") from None
    if not isinstance(document, dict) or not {"shapes", "imagePath"} <= document.keys():
        raise DatasetError(f"{path}: no 'shapes' and 'imagePath', so not a LabelMe JSON file")
    for shape in document["shapes"]:
        kind = shape.get("shape_type") or "polygon"
        if kind not in SHAPES:
            raise DatasetError(
                f"{path}: shape {shape.get('label')!r} is a {kind}, which outlines no region; "
                f"redraw it as one of {', '.join(SHAPES)}"
            )
    return document


def _sample(path: Path, document: dict, index: dict[str, int]) -> Sample:
    image = path.parent / document["imagePath"]
    data = None
    if not image.is_file():
        data = base64.b64decode(document["imageData"])
        with Image.open(io.BytesIO(data)) as embedded:
            size = (embedded.height, embedded.width)
    else:
        size = check_size(image, (document["imageHeight"], document["imageWidth"]), str(path))

    def draw() -> np.ndarray:
        return shapes_mask(document["shapes"], index, size)

    return Sample(name=image.stem, image=image, size=size, draw=draw, image_data=data)


def _background(image: Path) -> Sample:
    size = image_size(image)
    return Sample(image.stem, image, size, lambda: np.zeros(size, dtype=np.uint8))


def shapes_mask(shapes: list[dict], index: dict[str, int], size: tuple[int, int]) -> np.ndarray:
    """LabelMe ``shapes`` drawn in their order into a mask of class indices."""
    height, width = size
    canvas = Image.new("L", (width, height), 0)
    pen = ImageDraw.Draw(canvas)
    for shape in shapes:
        value = index[shape["label"]]
        points = [(float(x), float(y)) for x, y in shape["points"]]
        kind = shape.get("shape_type") or "polygon"
        if kind == "polygon":
            pen.polygon(points, fill=value, outline=value)
        elif kind == "rectangle":
            (x0, y0), (x1, y1) = points
            box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
            pen.rectangle(box, fill=value, outline=value)
        else:
            (cx, cy), (px, py) = points
            r = math.hypot(px - cx, py - cy)
            pen.ellipse((cx - r, cy - r, cx + r, cy + r), fill=value, outline=value)
    return np.asarray(canvas, dtype=np.uint8).copy()
