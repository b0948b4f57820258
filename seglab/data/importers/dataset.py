"""What every importer hands the writer: the classes, and each image with its mask of class
indices (void `VOID`), the mask drawn only when written so that a large export is never held
in memory whole.

Refusals (an image without annotations, an annotation without its image, a mask of another
size than its image) are found before anything is written and name the files, the first
`SHOWN` of them and a count of the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from seglab.data.metadata import DatasetError

#: the mask value of void pixels, conf/data/folder.yaml's default ``ignore_index``
VOID = 255
#: the class index of pixels no annotation covers
BACKGROUND = 0
SHOWN = 5
#: the option that keeps images without annotations as background
KEEP_UNANNOTATED = "--keep-unannotated"


@dataclass(frozen=True)
class Sample:
    """One image file and how to draw its mask: ``draw()`` returns a ``(height, width)``
    uint8 array of class indices and `VOID`, or raw image bytes ``image_data`` where the
    export embeds the image instead of naming a file (LabelMe's ``imageData``)."""

    name: str
    image: Path
    size: tuple[int, int]
    draw: Callable[[], np.ndarray]
    image_data: bytes | None = None


@dataclass(frozen=True)
class Export:
    """An annotation tool's export read into classes (index 0 is the background) and samples."""

    tool: str
    classes: tuple[str, ...]
    samples: tuple[Sample, ...]


def listed(names: Sequence[str]) -> str:
    """``names`` for an error: the first `SHOWN`, then how many more."""
    shown = ", ".join(str(name) for name in names[:SHOWN])
    more = len(names) - SHOWN
    return f"{shown} (and {more} more)" if more > 0 else shown


def refuse_unannotated(export: Path, images: Sequence[str], keep: bool) -> None:
    """Refuse ``images`` of ``export`` that no annotation covers, unless ``keep`` (then they
    are background): an image a user forgot to annotate would teach the model that its objects
    are background."""
    if images and not keep:
        raise DatasetError(
            f"{export}: {len(images)} image(s) have no annotation: {listed(sorted(images))}; "
            f"annotate them, remove them, or pass {KEEP_UNANNOTATED} to import them as "
            "background"
        )


def refuse_missing_images(export: Path, missing: Sequence[str], where: Path) -> None:
    """Refuse annotations of ``export`` whose image is not in ``where``."""
    if missing:
        raise DatasetError(
            f"{export}: {len(missing)} annotated image(s) not found in {where}: "
            f"{listed(sorted(missing))}; put the images there or pass --images <folder>"
        )


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image file, read from its header only."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, ValueError) as error:
        raise DatasetError(f"{path}: not a readable image ({error})") from None
    return height, width


def check_size(path: Path, stated: tuple[int, int], where: str) -> tuple[int, int]:
    """The size of image ``path``, refused when it differs from the size its annotation
    ``where`` states (the export belongs to another copy of the image)."""
    actual = image_size(path)
    if actual != stated:
        raise DatasetError(
            f"{path}: the image is {actual[1]}x{actual[0]} but {where} says "
            f"{stated[1]}x{stated[0]}; import the export with the images it was made on"
        )
    return actual


def unique_names(export: Path, samples: Iterable[Sample]) -> tuple[Sample, ...]:
    """``samples``, refused when two share an output name (files of one stem in two folders)."""
    seen: dict[str, Path] = {}
    kept = []
    for sample in samples:
        if sample.name in seen:
            raise DatasetError(
                f"{export}: {seen[sample.name]} and {sample.image} would both be written as "
                f"{sample.name}; rename one of them"
            )
        seen[sample.name] = sample.image
        kept.append(sample)
    return tuple(kept)


def class_list(export: Path, found: Iterable[str], given: Sequence[str] | None) -> tuple[str, ...]:
    """``background`` then the labels of an export: ``given`` in its order (``--classes``),
    which must cover every label found, or else the labels found, sorted."""
    found = set(found)
    if given is None:
        labels = sorted(found - {"background"})
    else:
        labels = [label for label in given if label != "background"]
        uncovered = sorted(found - set(labels) - {"background"})
        if uncovered:
            raise DatasetError(
                f"{export}: label(s) {listed(uncovered)} are not in --classes; add them"
            )
    refuse_many_classes(export, len(labels))
    return ("background", *labels)


def refuse_many_classes(export: Path, labels: int) -> None:
    """Masks are 8-bit, with `VOID` taken: at most 254 classes besides the background."""
    if labels + 1 >= VOID:
        raise DatasetError(
            f"{export}: {labels} labels; masks hold at most {VOID - 1} classes besides "
            f"the background, with {VOID} as void: merge some labels or leave some out"
        )
