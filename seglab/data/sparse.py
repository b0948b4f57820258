"""Sparse training labels derived from full masks: a few points, or a scribble, per region.

They stand in for what an annotator clicks or draws: ``points`` keeps ``k`` pixels of every
connected region of each class, ``scribbles`` a thin line along each region's medial axis.
Every other pixel becomes void. The pixels kept follow from the mask, the seed and the
sample's name alone, so an image gets the same sparse labels in every epoch, in a resumed run
and in every job of a sweep.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from seglab.extras import require

#: the kinds of sparse labels ``data.few_labels.sparse_labels`` may ask for
SPARSE_KINDS = ("points", "scribbles")
# 8-connectivity: a region's diagonal neighbours belong to it
_CONNECTED = np.ones((3, 3), dtype=bool)


def check_sparse(kind: str | None, points: int) -> None:
    """Refuse ``data.few_labels.sparse_labels``/``sparse_points`` values, naming the key."""
    if kind is not None and kind not in SPARSE_KINDS:
        raise ValueError(
            f"data.few_labels.sparse_labels={kind} is not one of: {', '.join(SPARSE_KINDS)} (or "
            "null for full masks)"
        )
    if points < 1:
        raise ValueError(f"data.few_labels.sparse_points={points} must be at least 1")
    if kind is not None:
        require("scipy.ndimage", f"data.few_labels.sparse_labels={kind}")


def _generator(seed: int, name: str) -> np.random.Generator:
    digest = hashlib.blake2b(f"seglab.sparse/{seed}/{name}".encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


def _regions(
    mask: np.ndarray, num_classes: int, ndimage: ModuleType
) -> Iterator[tuple[tuple[slice, slice], np.ndarray]]:
    """The connected regions of every class, class by class: each as a box around it with one
    pixel of margin (within the image) and the region's boolean mask inside that box.

    Working in the box rather than the whole image makes a mask of many small regions (a
    street scene) cost about its pixel count once instead of once per region.
    """
    height, width = mask.shape
    for index in range(num_classes):
        labelled, _ = ndimage.label(mask == index, structure=_CONNECTED)
        for region, box in enumerate(ndimage.find_objects(labelled), start=1):
            if box is None:
                continue
            rows, columns = box
            box = (
                slice(max(rows.start - 1, 0), min(rows.stop + 1, height)),
                slice(max(columns.start - 1, 0), min(columns.stop + 1, width)),
            )
            yield box, labelled[box] == region


def _skeleton(region: np.ndarray, ndimage: ModuleType) -> np.ndarray:
    """The region's medial axis, approximated: its pixels farthest from the border in their
    3x3 neighbourhood (a ridge of the distance transform), or its deepest pixel. ``region``
    is a box with a margin of non-region pixels wherever it does not end at the image's edge,
    so the result is the one the whole image would give."""
    distance = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
    ridge = region & (distance >= ndimage.maximum_filter(distance, size=3))
    if not ridge.any():
        ridge = distance == distance.max()
    return ridge


def sparse_mask(
    mask: np.ndarray,
    kind: str,
    points: int,
    seed: int,
    name: str,
    num_classes: int,
    ignore_index: int,
) -> np.ndarray:
    """``mask`` (``(H, W)`` class indices) with only the sparse labels of ``kind`` kept.

    Args:
        mask: the full mask; ``ignore_index`` (and any value outside the classes) stays void.
        kind: ``points`` (``points`` random pixels per region, fewer in a smaller region) or
            ``scribbles`` (each region's medial axis).
        points: pixels kept per region with ``points``.
        seed: with ``name``, which pixels are picked.
        name: the sample's name.
        num_classes: the class count.
        ignore_index: the void value the other pixels get.
    """
    ndimage = require("scipy.ndimage", f"data.few_labels.sparse_labels={kind}")
    sparse = np.full_like(mask, ignore_index)
    generator = _generator(seed, name)
    for box, region in _regions(mask, num_classes, ndimage):
        if kind == "points":
            rows, columns = np.nonzero(region)
            picked = generator.choice(rows.size, size=min(points, rows.size), replace=False)
            keep = (rows[picked], columns[picked])
        else:
            keep = _skeleton(region, ndimage)
        sparse[box][keep] = mask[box][keep]
    return sparse


@dataclass(frozen=True)
class SparseLabels:
    """`sparse_mask` with a dataset's settings: ``sparse(mask, name)``."""

    kind: str
    points: int
    seed: int
    num_classes: int
    ignore_index: int

    def __call__(self, mask: np.ndarray, name: str) -> np.ndarray:
        return sparse_mask(
            mask, self.kind, self.points, self.seed, name, self.num_classes, self.ignore_index
        )


class SparseMaskReader:
    """A mask file reader whose masks come out sparse, named by the file's stem (which is the
    image's), before any random transform moves them."""

    def __init__(self, read_mask: Callable[[Path], np.ndarray], sparse: SparseLabels) -> None:
        self.read_mask = read_mask
        self.sparse = sparse

    def __call__(self, path: Path) -> np.ndarray:
        return self.sparse(self.read_mask(path), path.stem)
