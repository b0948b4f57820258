"""What the masks of a dataset hold, checked on its setup scan before any training.

A config that reads the labels wrongly does not fail: it trains to the end and reports a score
that is silently wrong. 0/255 masks read with ``ignore_index`` 255 and no ``mask_values`` make
every foreground pixel void, so only the background is scored and val mIoU reaches 1.0. The
checks here refuse what is almost surely such a mistake, saying what to set; a dataset that
really is so (a class only the test split has, masks that label a few pixels of each image)
goes on with the option each message names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from seglab.data.metadata import DatasetError
from seglab.data.scan import ScanResult

#: the share of a split's pixels above which void is taken for a labelling mistake
VOID_HEAVY_SHARE = 0.5


@dataclass(frozen=True)
class LabelMap:
    """What the checks need to know of how masks are read (the data config's label keys)."""

    classes: Sequence[str]
    ignore_index: int
    mask_values: Sequence[int] | None
    void_colours: Sequence[Sequence[int]]
    multilabel: bool
    #: whether ``data.label_map`` says how masks read (then the other keys do not)
    mapped: bool = False


def _and(names: Sequence[str]) -> str:
    return " and ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + f" and {names[-1]}"


def _absent(classes: Sequence[str], splits: Sequence[str]) -> str:
    """``class 'dog' has no pixel in the train and val splits``"""
    subject = f"class {classes[0]!r} has" if len(classes) == 1 else f"classes {classes} have"
    return f"{subject} no pixel in the {_and(splits)} split{'s' if len(splits) > 1 else ''}"


def _void_pixels(scan: ScanResult, channels: int) -> tuple[int, int]:
    """Void pixels of a split (a multilabel pixel counts by its share of void channels), and
    all its pixels."""
    return int(scan.void_pixels.sum()) // channels, int(scan.image_pixels.sum())


def check_classes_present(scans: Mapping[str, ScanResult], labels: LabelMap) -> None:
    """Refuse a class with no pixel in any of the scanned splits; where void pixels fill in
    for it and the masks' values come from ``ignore_index`` (no ``mask_values``), say which
    ``mask_values`` read them as classes."""
    if not scans:
        return
    totals = torch.stack([scan.class_pixels.sum(0) for scan in scans.values()]).sum(0)
    absent = [
        name for name, total in zip(labels.classes, totals.tolist(), strict=True) if total == 0
    ]
    if not absent:
        return
    absent_where = _absent(absent, list(scans))
    channels = len(labels.classes) if labels.multilabel else 1
    void = sum(_void_pixels(scan, channels)[0] for scan in scans.values())
    if labels.mapped:
        raise DatasetError(
            f"{absent_where}: check that data.label_map gives the class its raw values (and "
            "not data.label_map.void); if the class is really absent from them, set "
            "data.allow_absent_classes=true"
        )
    if labels.mask_values is None and not labels.void_colours and void > 0:
        if labels.multilabel:
            values = [0, labels.ignore_index]
        else:
            present = [index for index, total in enumerate(totals.tolist()) if total > 0]
            values = sorted([*present, labels.ignore_index])
        fix = (
            f"set data.mask_values=[{','.join(str(v) for v in values)}]"
            if len(values) == (2 if labels.multilabel else len(labels.classes))
            else "list the raw value of every class in data.mask_values"
        )
        raise DatasetError(
            f"{absent_where}, and the masks' value {labels.ignore_index} reads as void because "
            f"it is data.ignore_index: if {labels.ignore_index} marks a class (0/255 masks store "
            f"the foreground as 255), {fix}"
        )
    raise DatasetError(
        f"{absent_where}: check that data.classes "
        "lists the classes in the order of data.mask_values (or data.palette, or the mask "
        "values 0, 1, ...); if the class is really absent from them, set "
        "data.allow_absent_classes=true"
    )


def check_void_share(scans: Mapping[str, ScanResult], labels: LabelMap) -> None:
    """Refuse a split more than `VOID_HEAVY_SHARE` of whose pixels are void."""
    channels = len(labels.classes) if labels.multilabel else 1
    for split, scan in scans.items():
        void, pixels = _void_pixels(scan, channels)
        if pixels and void / pixels > VOID_HEAVY_SHARE:
            if labels.mapped:
                raise DatasetError(
                    f"{void / pixels:.0%} of the pixels of the {split} split are void: check "
                    "the values data.label_map gives void (is a class among them?); if the "
                    "masks are meant to label only part of each image, set "
                    "data.allow_void_heavy=true"
                )
            colours = (
                f" or data.void_colours={list(labels.void_colours)}" if labels.void_colours else ""
            )
            raise DatasetError(
                f"{void / pixels:.0%} of the pixels of the {split} split are void (raw value "
                f"data.ignore_index={labels.ignore_index}{colours}): check data.ignore_index and "
                "data.mask_values (is a class stored as the void value?); if the masks are meant "
                "to label only part of each image, set data.allow_void_heavy=true"
            )
