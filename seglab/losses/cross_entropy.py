"""Pixel-wise likelihood losses: cross-entropy (softmax), binary cross-entropy (sigmoid) and
focal loss (either)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seglab.losses.modes import (
    MODES,
    channel_targets,
    check_logits_and_target,
    check_mode,
    valid_pixels,
)


def _per_channel(
    values: torch.Tensor | None, name: str, logits: torch.Tensor
) -> torch.Tensor | None:
    """A scalar as it is, or one value per logit channel shaped to broadcast over the pixels."""
    if values is None or values.dim() == 0:
        return values
    channels = logits.shape[1]
    if values.numel() != channels:
        raise ValueError(
            f"expected {channels} {name} (one per logit channel), got {values.numel()}"
        )
    return values.to(logits.dtype).view(channels, *[1] * (logits.dim() - 2))


def _optional_tensor(values: float | list[float] | None) -> torch.Tensor | None:
    return None if values is None else torch.tensor(values, dtype=torch.float)


class CrossEntropyLoss(nn.Module):
    """Pixel-wise cross-entropy, averaged over the non-ignored pixels (mode=multiclass only).

    Args:
        class_weights: one rescaling weight per class (length must equal the number of logit
            channels); the mean is then normalised by the summed weights of the target pixels,
            as in :func:`torch.nn.functional.cross_entropy`. ``None`` weighs classes equally.
        ignore_index: target value that marks pixels to leave out of the loss and its gradient.
            ``None`` means every pixel is labeled.
        label_smoothing: in ``[0, 1]``; mixes the one-hot target with a uniform distribution
            over classes by this amount, which discourages over-confident logits.
        mode: the task mode (see :mod:`seglab.losses.modes`); only ``multiclass`` fits a
            softmax over classes, any other is refused here.
    """

    def __init__(
        self,
        class_weights: list[float] | None = None,
        ignore_index: int | None = -100,
        label_smoothing: float = 0.0,
        mode: str = "multiclass",
    ) -> None:
        super().__init__()
        check_mode(type(self).__name__, mode, fits=("multiclass",))
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
        # A buffer follows the module to the device and into the state dict.
        self.register_buffer("class_weights", _optional_tensor(class_weights))
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing
        self.mode = mode

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_logits_and_target(logits, target, self.mode)
        num_classes = logits.shape[1]
        if self.class_weights is not None and self.class_weights.numel() != num_classes:
            raise ValueError(
                f"expected {num_classes} class_weights (one per logit channel), "
                f"got {self.class_weights.numel()}"
            )
        ignore_index = -100 if self.ignore_index is None else self.ignore_index
        weight = None if self.class_weights is None else self.class_weights.to(logits.dtype)
        loss = F.cross_entropy(
            logits,
            target,
            weight=weight,
            ignore_index=ignore_index,
            label_smoothing=self.label_smoothing,
        )
        # torch returns 0/0 = NaN for a batch of only ignored pixels; select 0 on the device
        # (no host sync) and keep the graph so backward still runs.
        all_ignored = (target == ignore_index).all()
        return torch.where(all_ignored, loss.new_zeros(()), loss)


class BinaryCrossEntropyLoss(nn.Module):
    """Binary cross-entropy of each channel's sigmoid, averaged over the non-ignored entries
    (pixels in binary mode, pixel-channel pairs in multilabel mode).

    Args:
        mode: ``binary`` (logits ``(N, 1, H, W)``, target ``(N, H, W)``) or ``multilabel``
            (logits and target ``(N, C, H, W)``); ``multiclass`` is refused (use
            :class:`CrossEntropyLoss`). Unlike the other losses it defaults to ``binary``,
            the simplest mode it fits.
        ignore_index: target value of entries left out of the loss and its gradient; in
            multilabel mode a pixel may be void in some channels only. ``None`` means every
            entry is labeled.
        pos_weight: weight of the positive term, ``-w y log s(x) - (1 - y) log(1 - s(x))``,
            as in :class:`torch.nn.BCEWithLogitsLoss`: above 1 trades precision for recall on
            a rare foreground (about ``negatives / positives`` balances them). A number for
            every channel, or a list with one per logit channel; ``None`` is 1.
    """

    def __init__(
        self,
        *,
        mode: str = "binary",
        ignore_index: int | None = None,
        pos_weight: float | list[float] | None = None,
    ) -> None:
        super().__init__()
        check_mode(type(self).__name__, mode, fits=("binary", "multilabel"))
        self.register_buffer("pos_weight", _optional_tensor(pos_weight))
        if self.pos_weight is not None and (self.pos_weight <= 0).any():
            raise ValueError(f"BinaryCrossEntropyLoss: pos_weight={pos_weight} must be positive")
        self.mode = mode
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_logits_and_target(logits, target, self.mode)
        labels, valid = channel_targets(logits, target, self.mode, self.ignore_index)
        loss = F.binary_cross_entropy_with_logits(
            logits.to(labels.dtype),
            labels,
            pos_weight=_per_channel(self.pos_weight, "pos_weight", logits),
            reduction="none",
        )
        return (loss * valid).sum() / valid.sum().clamp_min(1)


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017), ``-alpha_t (1 - p_t)^gamma log p_t``, averaged over the
    non-ignored entries: cross-entropy that down-weights pixels already classified well, so
    that training dwells on the hard ones.

    ``p_t`` is the softmax probability of the target class (multiclass) or the sigmoid
    probability of each channel's label (binary, multilabel). With ``gamma=0`` and no
    ``alpha`` it is :class:`CrossEntropyLoss` (unweighted) or :class:`BinaryCrossEntropyLoss`.

    Args:
        mode: ``multiclass`` (softmax focal loss), ``binary`` or ``multilabel`` (sigmoid focal
            loss per channel); see :mod:`seglab.losses.modes` for the shapes.
        ignore_index: target value of pixels (multilabel: entries) left out of the loss and its
            gradient. ``None`` means every pixel is labeled.
        gamma: focusing exponent, ``>= 0``; larger values shrink the loss of well-classified
            pixels faster (2 in the paper).
        alpha: class balance. Multiclass: a list of one weight per class, ``alpha_t`` being
            the weight of the pixel's target class. Binary and multilabel: a number in
            ``[0, 1]`` weighing positives by ``alpha`` and negatives by ``1 - alpha`` (0.25 in
            the paper), or a list with one such number per channel. ``None`` weighs all 1.
    """

    def __init__(
        self,
        *,
        mode: str = "multiclass",
        ignore_index: int | None = None,
        gamma: float = 2.0,
        alpha: float | list[float] | None = None,
    ) -> None:
        super().__init__()
        check_mode(type(self).__name__, mode, fits=MODES)
        if gamma < 0:
            raise ValueError(f"FocalLoss: gamma={gamma} must be >= 0")
        self.register_buffer("alpha", _optional_tensor(alpha))
        if self.alpha is not None:
            if mode == "multiclass" and self.alpha.dim() == 0:
                raise ValueError(
                    f"FocalLoss: alpha={alpha} must be a list of one weight per class with "
                    "mode=multiclass"
                )
            if mode != "multiclass" and not ((self.alpha >= 0) & (self.alpha <= 1)).all():
                raise ValueError(f"FocalLoss: alpha={alpha} must be in [0, 1] with mode={mode}")
        self.mode = mode
        self.ignore_index = ignore_index
        self.gamma = gamma

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_logits_and_target(logits, target, self.mode)
        dtype = torch.promote_types(logits.dtype, torch.float32)
        alpha = _per_channel(self.alpha, "alpha", logits)
        if self.mode == "multiclass":
            valid = valid_pixels(target, self.ignore_index)
            labels = torch.where(valid, target, torch.zeros_like(target)).unsqueeze(1)
            # Void logits are replaced, not only masked: (1 - p_t)^gamma has an infinite
            # slope at p_t = 1 for gamma < 1, and 0 * inf would be a NaN gradient there.
            logits = torch.where(valid.unsqueeze(1), logits.to(dtype), 0.0)
            log_p_t = logits.log_softmax(dim=1).gather(1, labels).squeeze(1)
            # 1 - p_t without the cancellation of 1 - exp(log p_t) for confident pixels
            loss = -((-torch.expm1(log_p_t)) ** self.gamma) * log_p_t
            if alpha is not None:
                loss = loss * alpha.flatten()[labels.squeeze(1)]
        else:
            labels, valid = channel_targets(logits, target, self.mode, self.ignore_index)
            logits = torch.where(valid, logits.to(dtype), 0.0)
            cross_entropy = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
            # cross_entropy = -log p_t
            loss = (-torch.expm1(-cross_entropy)) ** self.gamma * cross_entropy
            if alpha is not None:
                loss = loss * (alpha * labels + (1 - alpha) * (1 - labels))
        return (loss * valid).sum() / valid.sum().clamp_min(1)
