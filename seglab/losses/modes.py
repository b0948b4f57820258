"""Task modes: the shapes of logits and targets each loss takes, and the targets as channels.

- ``multiclass``: logits ``(N, C, H, W)``, one softmax over the classes; target ``(N, H, W)``
  int64 with values in ``[0, C)`` or ``ignore_index``.
- ``binary``: logits ``(N, 1, H, W)``, a sigmoid of the foreground; target ``(N, H, W)`` int64
  with values in ``{0, 1}`` or ``ignore_index``.
- ``multilabel``: logits ``(N, C, H, W)``, one sigmoid per class; target ``(N, C, H, W)`` int64
  with values in ``{0, 1}`` or ``ignore_index``, so a pixel may be void in some channels only.

Any number of spatial dimensions works in place of ``H, W``. Shapes and dtypes are checked;
target values are not, since that would read the target back to the host every step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from seglab.task_modes import MODES

#: What to use instead of a loss that does not fit a mode, as configs name the losses.
_INSTEAD = {
    "multiclass": "loss=ce (ce_dice in place of bce_dice)",
    "binary": "loss=bce (bce_dice in place of ce_dice)",
    "multilabel": "loss=bce (bce_dice in place of ce_dice)",
}


def check_mode(loss: str, mode: str, fits: tuple[str, ...] = MODES) -> None:
    """Refuse an unknown ``mode``, or one that ``loss`` (a class name) does not fit, in one line
    that says what to use instead."""
    if mode not in MODES:
        raise ValueError(f"{loss}: mode={mode} is not one of: {', '.join(MODES)}")
    if mode not in fits:
        raise ValueError(
            f"{loss} does not fit mode={mode}; use {_INSTEAD[mode]}, or focal, dice, tversky or "
            "lovasz, which fit every mode"
        )


def check_logits_and_target(logits: torch.Tensor, target: torch.Tensor, mode: str) -> None:
    """Fail early naming both shapes; torch's own errors here are cryptic or, worse, broadcast."""
    if logits.dim() < 3:
        raise ValueError(f"expected logits (N, C, H, W), got {tuple(logits.shape)}")
    if mode == "binary" and logits.shape[1] != 1:
        raise ValueError(
            f"mode=binary expects logits (N, 1, H, W) (one foreground channel), got logits "
            f"{tuple(logits.shape)}"
        )
    if mode == "multilabel":
        expected, layout = tuple(logits.shape), "(N, C, H, W)"
    else:
        expected, layout = (logits.shape[0], *logits.shape[2:]), "(N, H, W)"
    if tuple(target.shape) != expected:
        raise ValueError(
            f"expected target {layout} = {expected} to match logits (N, C, H, W) = "
            f"{tuple(logits.shape)}, got target {tuple(target.shape)}"
        )
    if target.dtype != torch.long:
        raise TypeError(f"expected target of dtype torch.int64, got {target.dtype}")


def valid_pixels(target: torch.Tensor, ignore_index: int | None) -> torch.Tensor:
    """Where ``target`` is labeled (not ``ignore_index``), as a bool tensor of its shape."""
    if ignore_index is None:
        return torch.ones_like(target, dtype=torch.bool)
    return target != ignore_index


def channel_targets(
    logits: torch.Tensor, target: torch.Tensor, mode: str, ignore_index: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``target`` as ``(labels, valid)``, both shaped like ``logits``: ``labels`` is 1.0 where a
    channel's class is present (one-hot in multiclass mode) and 0.0 elsewhere, void included;
    ``valid`` is False where the pixel (multiclass, binary) or the entry (multilabel) is void."""
    valid = valid_pixels(target, ignore_index)
    # void values may be outside [0, C) (e.g. 255), so they become 0 before one_hot
    labels = torch.where(valid, target, torch.zeros_like(target))
    dtype = torch.promote_types(logits.dtype, torch.float32)
    if mode == "multiclass":
        labels = F.one_hot(labels, logits.shape[1]).movedim(-1, 1)
        valid = valid.unsqueeze(1).expand_as(logits)
    elif mode == "binary":
        labels, valid = labels.unsqueeze(1), valid.unsqueeze(1)
    return labels.to(dtype), valid


def probabilities(logits: torch.Tensor, mode: str) -> torch.Tensor:
    """Softmax over the classes (multiclass) or a sigmoid per channel, in at least float32:
    half-precision sums over millions of pixels lose precision (fp16 overflows at 65504)."""
    dtype = torch.promote_types(logits.dtype, torch.float32)
    if mode == "multiclass":
        return logits.softmax(dim=1, dtype=dtype)
    return logits.to(dtype).sigmoid()
