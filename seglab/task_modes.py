"""Task modes: what a pixel's label is, and so how logits become probabilities, labels and scores.

- ``multiclass``: each pixel is one of ``data.num_classes`` classes; a softmax over the logits'
  channels, labels by argmax, one confusion matrix over the classes.
- ``binary``: each pixel is background or foreground (``data.num_classes`` 2); one logit
  channel, a sigmoid, foreground where the probability exceeds ``threshold``, and the same
  2-class confusion matrix as multiclass, so both classes are scored.
- ``multilabel``: each pixel has any subset of the classes; one sigmoid channel per class,
  thresholded one by one, and per class a binary confusion matrix of that class's channel.

The run's config holds the mode once (``mode``, with ``threshold``, in ``conf/train.yaml``);
the model head, the metrics, inference, prediction and export ask the `TaskMode` that
`task_mode` makes of it, so that no other module tells the modes apart by name.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.classification import MultilabelConfusionMatrix

from seglab.errors import SeglabError
from seglab.metrics.confusion import confusion_matrix_metric, multilabel_scores, segmentation_scores

MODES = ("multiclass", "binary", "multilabel")
#: the mode and threshold of a config saved before they existed
DEFAULT_MODE = "multiclass"
DEFAULT_THRESHOLD = 0.5


class TaskMode:
    """How one mode reads logits. ``dim`` is the logits' channel axis (1 for a batch ``(N, C,
    H, W)``, 0 for one image ``(C, H, W)``).

    Attributes:
        name: one of `MODES`.
        threshold: probability above which a sigmoid channel's pixel is positive.
        class_axis: labels and targets keep the channel axis (``(N, C, H, W)``, values 0, 1 and
            the void value) instead of holding one class index per pixel (``(N, H, W)``).
        mask_value: the value a positive pixel has in a predicted mask file, which holds 0
            elsewhere (0/255 masks of a sigmoid mode); None for files of class indices.
    """

    name = ""
    class_axis = False
    mask_value: int | None = 255

    def __init__(self, threshold: float = DEFAULT_THRESHOLD) -> None:
        self.threshold = float(threshold)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(threshold={self.threshold})"

    def channels(self, num_classes: int) -> int:
        """Logit channels of the model head for ``num_classes`` data classes."""
        return num_classes

    def check_classes(self, num_classes: int) -> None:
        """Refuse a data class count the mode cannot score (ValueError naming the keys)."""

    def probabilities(self, logits: Tensor, dim: int = 1) -> Tensor:
        """Per-pixel probabilities, shaped like ``logits``."""
        return logits.sigmoid()

    def logits(self, probabilities: Tensor, dim: int = 1) -> Tensor:
        """Logits whose `probabilities` are ``probabilities`` (for averaged TTA passes)."""
        return torch.logit(probabilities, eps=1e-7)

    def labels(self, logits: Tensor, dim: int = 1) -> Tensor:
        """Int64 labels of logits: what the metrics count and prediction writes."""
        # sigmoid(x) > t  <=>  x > logit(t): no sigmoid over the whole batch
        return (logits > math.log(self.threshold / (1 - self.threshold))).long()

    def labels_of_probabilities(self, probabilities: Tensor, dim: int = 1) -> Tensor:
        """Int64 labels of probabilities (those `probabilities` gives)."""
        return (probabilities > self.threshold).long()

    def metric(self, num_classes: int, ignore_index: int) -> Metric:
        """Counts of a split, accumulated on the device: ``update(labels, target)``."""
        return confusion_matrix_metric(num_classes, ignore_index)

    def scores(self, counts: Tensor) -> dict[str, Tensor]:
        """IoU, Dice (per class and means), pixel accuracy and ``present`` from the counts."""
        return segmentation_scores(counts)


class Multiclass(TaskMode):
    name = "multiclass"
    mask_value = None

    def probabilities(self, logits: Tensor, dim: int = 1) -> Tensor:
        return logits.softmax(dim=dim)

    def logits(self, probabilities: Tensor, dim: int = 1) -> Tensor:
        # the log of probabilities: softmax gives them back, argmax is theirs
        return probabilities.clamp_min(1e-12).log()

    def labels(self, logits: Tensor, dim: int = 1) -> Tensor:
        return logits.argmax(dim=dim)

    def labels_of_probabilities(self, probabilities: Tensor, dim: int = 1) -> Tensor:
        return probabilities.argmax(dim=dim)


class Binary(TaskMode):
    name = "binary"

    def channels(self, num_classes: int) -> int:
        return 1

    def check_classes(self, num_classes: int) -> None:
        if num_classes != 2:
            raise ValueError(
                f"mode=binary scores background and foreground, but data.num_classes="
                f"{num_classes}; give data 2 classes (e.g. data.classes=[background,foreground]) "
                "or use mode=multiclass or mode=multilabel"
            )

    def labels(self, logits: Tensor, dim: int = 1) -> Tensor:
        return super().labels(logits, dim).squeeze(dim)

    def labels_of_probabilities(self, probabilities: Tensor, dim: int = 1) -> Tensor:
        return super().labels_of_probabilities(probabilities, dim).squeeze(dim)


class Multilabel(TaskMode):
    name = "multilabel"
    class_axis = True

    def metric(self, num_classes: int, ignore_index: int) -> Metric:
        # (C, 2, 2) per class: [[tn, fp], [fn, tp]]; validate_args=False keeps the value checks
        # (host copies) out of every step
        return MultilabelConfusionMatrix(
            num_labels=num_classes, ignore_index=ignore_index, validate_args=False
        )

    def scores(self, counts: Tensor) -> dict[str, Tensor]:
        return multilabel_scores(counts)


_MODES: dict[str, type[TaskMode]] = {
    "multiclass": Multiclass,
    "binary": Binary,
    "multilabel": Multilabel,
}


def make_mode(name: str, threshold: float = DEFAULT_THRESHOLD) -> TaskMode:
    """The mode called ``name``; ValueError naming ``mode`` or ``threshold`` for a bad value."""
    if name not in _MODES:
        raise ValueError(f"mode={name} is not one of: {', '.join(MODES)}")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise ValueError(f"threshold={threshold} must be a number in (0, 1), e.g. 0.5")
    if not 0 < threshold < 1:
        raise ValueError(
            f"threshold={threshold} must be in (0, 1): the probability above which a sigmoid "
            "output counts as positive, e.g. threshold=0.5"
        )
    return _MODES[name](threshold)


def task_mode(cfg: Any) -> TaskMode:
    """The mode of a run config (``mode``, ``threshold``), checked against its data's class
    count; a config saved before modes existed is multiclass. SeglabError for bad values."""
    try:
        mode = make_mode(
            str(cfg.get("mode", DEFAULT_MODE)), cfg.get("threshold", DEFAULT_THRESHOLD)
        )
        data = cfg.get("data")
        if data is not None and data.get("num_classes") is not None:
            mode.check_classes(int(data.num_classes))
    except ValueError as error:
        raise SeglabError(str(error)) from None
    return mode
