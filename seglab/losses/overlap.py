"""Region-overlap losses on probabilities: soft Dice and its generalisation, soft Tversky.

Both sum the overlap of each channel over the batch and all pixels (not per image), so the
loss tracks the dataset-level score that evaluation reports and a class present in a few
pixels of one image is not inflated into a whole per-image term.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from seglab.losses.modes import (
    MODES,
    channel_targets,
    check_logits_and_target,
    check_mode,
    probabilities,
)


class _Overlap(NamedTuple):
    """Soft counts per channel, summed over the batch and pixels of non-void entries."""

    true_positive: torch.Tensor
    false_positive: torch.Tensor
    false_negative: torch.Tensor


def _soft_counts(
    logits: torch.Tensor, target: torch.Tensor, mode: str, ignore_index: int | None
) -> _Overlap:
    check_logits_and_target(logits, target, mode)
    probs = probabilities(logits, mode)
    labels, valid = channel_targets(logits, target, mode, ignore_index)
    # where, not a product: void probabilities and labels (one-hot of a stand-in class) drop out
    probs = torch.where(valid, probs, 0.0)
    labels = torch.where(valid, labels, 0.0)
    dims = [0, *range(2, logits.dim())]
    return _Overlap(
        true_positive=(probs * labels).sum(dims),
        false_positive=(probs * (1 - labels)).sum(dims),
        false_negative=((1 - probs) * labels).sum(dims),
    )


def _class_mean(
    per_class_loss: torch.Tensor, target_mass: torch.Tensor, present_only: bool
) -> torch.Tensor:
    """The mean over channels, or over those whose class occurs in the non-void target."""
    if not present_only:
        return per_class_loss.mean()
    present = (target_mass > 0).to(per_class_loss.dtype)
    # With nothing present (all pixels ignored) this is 0, not NaN.
    return (per_class_loss * present).sum() / present.sum().clamp_min(1)


def _check_smoothing(smooth: float, eps: float) -> None:
    if smooth < 0 or eps <= 0:
        raise ValueError(f"expected smooth >= 0 and eps > 0, got smooth={smooth}, eps={eps}")


class DiceLoss(nn.Module):
    """Soft Dice loss: ``1 - mean_c (2 I_c + smooth) / (P_c + T_c + smooth)``.

    ``I_c``, ``P_c`` and ``T_c`` are the intersection, probability mass and target mass of
    channel ``c``, summed over the batch and all pixels.

    Args:
        mode: ``multiclass`` (softmax over the classes), ``binary`` (sigmoid of the one
            foreground channel) or ``multilabel`` (a sigmoid per channel); see
            :mod:`seglab.losses.modes` for the shapes.
        ignore_index: target value of pixels (multilabel: entries) masked out of both the
            probabilities and the target, so they get no gradient. May be outside ``[0, C)``
            (e.g. 255). ``None`` means every pixel is labeled.
        smooth: added to numerator and denominator; keeps the ratio defined for empty classes
            and softens the gradient when a class has few pixels.
        eps: lower bound of the denominator, so ``smooth=0`` with an empty class is 0 rather
            than NaN.
        present_classes_only: average only over channels whose class occurs in the batch's
            non-void target. Otherwise an absent class contributes ``P_c / (P_c + smooth)``,
            which for a small ``smooth`` saturates near 1 at the first false-positive
            probability mass. In binary mode the one channel is the foreground: a batch
            without any foreground then gives 0.
    """

    def __init__(
        self,
        ignore_index: int | None = None,
        smooth: float = 1.0,
        eps: float = 1e-7,
        present_classes_only: bool = True,
        mode: str = "multiclass",
    ) -> None:
        super().__init__()
        check_mode(type(self).__name__, mode, fits=MODES)
        _check_smoothing(smooth, eps)
        self.mode = mode
        self.ignore_index = ignore_index
        self.smooth = smooth
        self.eps = eps
        self.present_classes_only = present_classes_only

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        counts = _soft_counts(logits, target, self.mode, self.ignore_index)
        intersection = counts.true_positive
        prediction_mass = intersection + counts.false_positive
        target_mass = intersection + counts.false_negative
        denominator = (prediction_mass + target_mass + self.smooth).clamp_min(self.eps)
        per_class_loss = 1 - (2 * intersection + self.smooth) / denominator
        return _class_mean(per_class_loss, target_mass, self.present_classes_only)


class TverskyLoss(nn.Module):
    """Soft Tversky loss (Salehi et al. 2017): Dice with false positives and false negatives
    weighed apart, ``1 - mean_c (2 TP_c + smooth) / (2 TP_c + 2 alpha FP_c + 2 beta FN_c +
    smooth)``.

    That is the usual index ``TP / (TP + alpha FP + beta FN)`` with ``smooth / 2`` added to
    both sides, written so that ``alpha = beta = 0.5`` is :class:`DiceLoss` with the same
    ``smooth``. ``TP``, ``FP`` and ``FN`` are soft counts of channel ``c`` summed over the
    batch and all pixels.

    Args:
        alpha: weight of false positives (probability mass outside the target).
        beta: weight of false negatives (target pixels the probabilities miss); ``beta >
            alpha`` favours recall, which helps small structures (0.7 and 0.3 in the paper).
        mode: ``multiclass`` (softmax over the classes), ``binary`` (sigmoid of the one
            foreground channel) or ``multilabel`` (a sigmoid per channel); see
            :mod:`seglab.losses.modes` for the shapes.
        ignore_index: target value of pixels (multilabel: entries) masked out of both the
            probabilities and the target, so they get no gradient. May be outside ``[0, C)``
            (e.g. 255). ``None`` means every pixel is labeled.
        smooth: added to numerator and denominator; keeps the ratio defined for empty classes
            and softens the gradient when a class has few pixels.
        eps: lower bound of the denominator, so ``smooth=0`` with an empty class is 0 rather
            than NaN.
        present_classes_only: average only over channels whose class occurs in the batch's
            non-void target. Otherwise an absent class contributes ``P_c / (P_c + smooth)``,
            which for a small ``smooth`` saturates near 1 at the first false-positive
            probability mass. In binary mode the one channel is the foreground: a batch
            without any foreground then gives 0.
    """

    def __init__(
        self,
        *,
        mode: str = "multiclass",
        ignore_index: int | None = None,
        alpha: float = 0.3,
        beta: float = 0.7,
        smooth: float = 1.0,
        eps: float = 1e-7,
        present_classes_only: bool = True,
    ) -> None:
        super().__init__()
        check_mode(type(self).__name__, mode, fits=MODES)
        if alpha < 0 or beta < 0:
            raise ValueError(f"TverskyLoss: alpha={alpha} and beta={beta} must be >= 0")
        _check_smoothing(smooth, eps)
        self.mode = mode
        self.ignore_index = ignore_index
        self.alpha = alpha
        self.beta = beta
        self.smooth = smooth
        self.eps = eps
        self.present_classes_only = present_classes_only

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        counts = _soft_counts(logits, target, self.mode, self.ignore_index)
        numerator = 2 * counts.true_positive + self.smooth
        denominator = numerator + 2 * (
            self.alpha * counts.false_positive + self.beta * counts.false_negative
        )
        per_class_loss = 1 - numerator / denominator.clamp_min(self.eps)
        target_mass = counts.true_positive + counts.false_negative
        return _class_mean(per_class_loss, target_mass, self.present_classes_only)
