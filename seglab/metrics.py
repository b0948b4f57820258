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
    fp = cm.sum(dim=0) - tp
    fn = cm.sum(dim=1) - tp
    iou = tp / (tp + fp + fn)
    dice = 2 * tp / (2 * tp + fp + fn)
    scores = {
        "IoU": iou,
        "Dice": dice,
        "mIoU": iou.nanmean(),
        "mDice": dice.nanmean(),
        "pixel_accuracy": tp.sum() / cm.sum(),
    }
    scores = {name: value.float() for name, value in scores.items()}
    scores["present"] = (tp + fp + fn) > 0
    return scores
