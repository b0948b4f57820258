"""Segmentation metrics defined from one confusion matrix accumulated over a whole split.

Averaging per-batch IoUs over-weights small batches and classes that happen to be missing
from a batch; the torchvision references and mmsegmentation instead accumulate a single
confusion matrix and derive every score from it at the end, which is what this module does.
"""

import torch
from torchmetrics.classification import MulticlassConfusionMatrix


def confusion_matrix_metric(
    num_classes: int, ignore_index: int | None
) -> MulticlassConfusionMatrix:
    """Confusion-matrix accumulator; rows are targets, columns predictions.

    Preds may be logits ``(N, C, H, W)`` (argmaxed by torchmetrics) or labels ``(N, H, W)``;
    targets are ``(N, H, W)``. Pixels whose target equals ``ignore_index`` are not counted.
    ``validate_args=False`` skips torchmetrics' per-update value checks, which copy to the host
    and would stall the GPU every step.
    """
    return MulticlassConfusionMatrix(
        num_classes=num_classes, ignore_index=ignore_index, validate_args=False
    )


def segmentation_scores(confmat: torch.Tensor) -> dict[str, torch.Tensor]:
    """IoU, Dice and pixel accuracy from a ``(C, C)`` confusion matrix (rows target, cols pred).

    A class with an empty row and column (never in the target nor predicted over the split) has
    no defined score: its ``IoU`` and ``Dice`` are NaN and ``mIoU``/``mDice`` leave it out
    (nanmean), so a dataset without some class is not penalised for it. A class that is only
    predicted scores 0 and does count. ``present`` marks the classes that count; an all-zero
    matrix gives NaN means and accuracy.
    """
    cm = confmat.to(torch.float64)
    tp = cm.diagonal()
    return _scores(
        tp, fp=cm.sum(dim=0) - tp, fn=cm.sum(dim=1) - tp, correct=tp.sum(), total=cm.sum()
    )


def multilabel_scores(confmats: torch.Tensor) -> dict[str, torch.Tensor]:
    """The same scores from ``(C, 2, 2)`` per-class binary confusion matrices (``[[tn, fp],
    [fn, tp]]`` of class ``c``'s channel, as torchmetrics' MultilabelConfusionMatrix counts).

    Class ``c``'s IoU and Dice are those of its own channel (its positives against the rest);
    a class never in the target nor predicted is NaN and left out of the means, as above.
    Pixel accuracy is the share of right decisions over every class channel.
    """
    cm = confmats.to(torch.float64)
    tn, fp, fn, tp = cm[:, 0, 0], cm[:, 0, 1], cm[:, 1, 0], cm[:, 1, 1]
    return _scores(tp, fp=fp, fn=fn, correct=(tp + tn).sum(), total=cm.sum())


def _scores(
    tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor, correct: torch.Tensor, total: torch.Tensor
) -> dict[str, torch.Tensor]:
    iou = tp / (tp + fp + fn)
    dice = 2 * tp / (2 * tp + fp + fn)
    scores = {
        "IoU": iou,
        "Dice": dice,
        "mIoU": iou.nanmean(),
        "mDice": dice.nanmean(),
        "pixel_accuracy": correct / total,
    }
    scores = {name: value.float() for name, value in scores.items()}
    scores["present"] = (tp + fp + fn) > 0
    return scores
