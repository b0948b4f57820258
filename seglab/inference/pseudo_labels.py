"""Pseudo-labels: a trained model's confident predictions saved as masks of its own dataset.

``seglab-predict pseudo_labels=true confidence=0.9`` writes, for every image, the mask file the
checkpoint's data config reads: each pixel's class as its stored value (``data.mask_values``,
the smallest raw value ``data.label_map`` gives the class, or the class index), and void
(``data.ignore_index``, or the smallest void value of the label map) where the model's top
class probability is below ``confidence``, in a file ``<stem><data.layout.mask_extension>``. A
folder of them is a training set for ``seglab-train data=folder``, so a round of self-training
is two commands. Probabilities are those `seglab.inference.predictor.Predictor.probabilities`
gives, so sliding windows and test-time augmentation are averaged before the confidence test.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from seglab.data.label_map import LabelTable, label_table
from seglab.errors import SeglabError
from seglab.task_modes import Binary, Multiclass, TaskMode

#: the largest value a 16-bit PNG holds
_MAX_STORED = 65535
#: extensions whose compression would change the stored values
_LOSSY = (".jpg", ".jpeg")


def check_confidence(pseudo_labels: Any, confidence: Any) -> float | None:
    """``confidence`` as a float in (0, 1), or None (every pixel keeps its label); SeglabError
    naming the key for a value out of range, or for one given without ``pseudo_labels=true``."""
    if not isinstance(pseudo_labels, bool):
        raise SeglabError(f"pseudo_labels={pseudo_labels} must be true or false")
    if confidence is None:
        return None
    if not pseudo_labels:
        raise SeglabError(
            f"confidence={confidence} only applies to pseudo-labels: add pseudo_labels=true, or "
            "leave confidence out"
        )
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        raise SeglabError(f"confidence={confidence} must be a number in (0, 1), e.g. 0.9")
    if not 0 < confidence < 1:
        raise SeglabError(
            f"confidence={confidence} must be in (0, 1): the top class probability a pixel "
            "needs to keep its pseudo-label (void below), e.g. confidence=0.9"
        )
    return float(confidence)


class PseudoLabeler:
    """Turns class probabilities into a mask file of the dataset, and counts the pixels kept.

    Args:
        mode: the task mode; multiclass (top softmax probability) and binary (foreground
            probability ``p``, confident where ``max(p, 1 - p)`` reaches ``confidence``).
        data: the checkpoint's data config: ``num_classes``, ``ignore_index`` and, where the
            dataset is stored as files, ``mask_values`` or ``label_map`` and
            ``layout.mask_extension``.
        confidence: the probability a pixel needs to keep its label; None keeps every pixel.

    Raises:
        SeglabError: naming the key, for a mode without one class per pixel, or a mask format
            the stored values or the void value cannot be written in.
    """

    def __init__(self, mode: TaskMode, data: Any, confidence: float | None) -> None:
        if not isinstance(mode, Multiclass | Binary):
            raise SeglabError(
                f"pseudo_labels=true writes one class per pixel, so mode={mode.name} is not "
                "supported; use a multiclass or binary checkpoint"
            )
        self.mode = mode
        self.confidence = confidence
        num_classes = int(data.num_classes)
        values = data.get("mask_values")
        self.values = list(range(num_classes)) if values is None else [int(v) for v in values]
        self.void = int(data.ignore_index)
        self.key = "data.mask_values"
        table = label_table(data.get("label_map"), list(data.classes), self.void)
        if table is not None:
            self._stored_by(table)
        layout = data.get("layout") or {}
        self.extension = str(layout.get("mask_extension", ".png")).lower()
        self._check(list(data.classes))
        stored = self.values + ([self.void] if confidence is not None else [])
        self.dtype = np.uint8 if max(stored) <= 255 else np.uint16
        self.kept = 0
        self.pixels = 0

    def _stored_by(self, table: LabelTable) -> None:
        """The raw values of a dataset read through ``data.label_map``: the smallest the map
        gives each class, and void."""
        if table.colours:
            raise SeglabError(
                "pseudo_labels=true writes single-channel masks of raw values, but the "
                "checkpoint's data.label_map maps colours; train on masks of raw values to "
                "write pseudo-labels"
            )
        void = table.raw_value(self.void)
        if void is None and self.confidence is not None:
            raise SeglabError(
                f"data.label_map gives void no raw value, so pixels below confidence="
                f"{self.confidence} could not be void; add one to data.label_map.void (e.g. "
                "[255], a value no class has) and train with the same"
            )
        self.values = [table.raw_value(index) for index in range(len(self.values))]
        self.void = self.void if void is None else void
        self.key = "data.label_map"

    def _check(self, classes: Sequence[str]) -> None:
        if len(self.values) != len(classes):
            raise SeglabError(
                f"{self.key}={self.values} has {len(self.values)} values for "
                f"{len(classes)} classes; give one stored value per class"
            )
        if min(self.values) < 0 or max(self.values) > _MAX_STORED:
            raise SeglabError(
                f"{self.key}={self.values} cannot be stored in a mask file: values must be "
                f"in 0..{_MAX_STORED}"
            )
        if self.extension in _LOSSY or self.extension not in Image.registered_extensions():
            raise SeglabError(
                f"data.layout.mask_extension={self.extension} is no lossless image format to write "
                "masks in; set data.layout.mask_extension=.png (and train with the same)"
            )
        if self.confidence is None:
            return
        if not 0 <= self.void <= _MAX_STORED:
            raise SeglabError(
                f"data.ignore_index={self.void} cannot be stored in a mask file, so pixels "
                f"below confidence={self.confidence} could not be void; set data.ignore_index "
                f"to a value in 0..{_MAX_STORED} that is no class value, e.g. 255 (and train "
                "with the same)"
            )
        if self.void in self.values:
            name = classes[self.values.index(self.void)]
            raise SeglabError(
                f"data.ignore_index={self.void} is the stored value of class {name!r} "
                f"(data.mask_values={self.values}), so void pixels would read as that class; "
                "set data.ignore_index to another value (and train with the same)"
            )

    def file_name(self, stem: str) -> str:
        """The mask file of the image ``<stem>.*``, as the dataset names it."""
        return f"{stem}{self.extension}"

    def mask(self, probabilities: Tensor) -> tuple[np.ndarray, Tensor]:
        """The stored mask ``(H, W)`` of ``(C, H, W)`` probabilities (those of
        `Predictor.probabilities`), and the class indices before void was applied."""
        labels = self.mode.labels_of_probabilities(probabilities, dim=0)
        if isinstance(self.mode, Binary):
            confidence = torch.maximum(probabilities[0], 1 - probabilities[0])
        else:
            confidence = probabilities.max(dim=0).values
        table = torch.tensor(self.values, dtype=torch.int64)
        stored = table[labels]
        if self.confidence is not None:
            confident = confidence >= self.confidence
            stored[~confident] = self.void
            self.kept += int(confident.sum())
        else:
            self.kept += labels.numel()
        self.pixels += labels.numel()
        return stored.numpy().astype(self.dtype), labels

    def save(self, mask: np.ndarray, path: Path) -> None:
        """Write ``mask`` as a single-channel image: 8-bit, or 16-bit for larger values."""
        Image.fromarray(mask).save(path)

    def kept_share(self) -> float:
        """The share of the pixels written so far that kept their label (not void)."""
        return self.kept / self.pixels if self.pixels else 0.0

    def summary(self) -> str:
        """One line for the user choosing ``confidence``."""
        if self.confidence is None:
            return f"pseudo-labels: every pixel kept ({self.pixels} pixels, no confidence set)"
        return (
            f"pseudo-labels: {self.kept_share():.1%} of {self.pixels} pixels at or above "
            f"confidence={self.confidence}, the rest void (stored as {self.void})"
        )
