"""Lovasz losses (Berman et al. 2018): a convex surrogate of the Jaccard loss (1 - IoU) that
optimises IoU directly.

The Jaccard loss of a class is a set function of its mispredicted pixels; its Lovasz extension
interpolates it over per-pixel errors in ``[0, inf)``: with the errors sorted in decreasing
order, ``sum_i m_(i) (J({1..i}) - J({1..i-1}))``, a weighted sum whose weights depend only on
the target along the sorted order.
"""

from __future__ import annotations

import torch
from torch import nn

from seglab.losses.modes import (
    MODES,
    channel_targets,
    check_logits_and_target,
    check_mode,
    probabilities,
)


def _lovasz_extension(
    errors: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """The Lovasz extension of the Jaccard loss of each column of ``errors`` ``(P, K)``,
    whose entries are ``>= 0`` where ``valid``; ``labels`` (0.0 or 1.0) say which pixels of a
    column belong to its class. Void entries are sorted last, where they change no weight of a
    valid one, and contribute 0 to value and gradient."""
    errors = errors.masked_fill(~valid, float("-inf"))
    labels = torch.where(valid, labels, 0.0)
    errors_sorted, order = errors.sort(dim=0, descending=True)
    labels_sorted = labels.gather(0, order)
    positives = labels_sorted.sum(0)
    # Jaccard loss of the first i pixels of the order predicted wrongly: 1 - |gt - A| / |gt + A|;
    # the union is >= 1 from the first pixel on (a positive, or a negative it adds)
    intersection = positives - labels_sorted.cumsum(0)
    union = positives + (1 - labels_sorted).cumsum(0)
    jaccard = 1 - intersection / union
    weights = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
    # relu maps the void entries' -inf to 0 (with no gradient) and the hinge's errors below 0
    return (errors_sorted.relu() * weights).sum(0)


class LovaszLoss(nn.Module):
    """Lovasz-softmax (multiclass) or Lovasz-hinge (binary, multilabel) loss.

    - multiclass: per class, the errors ``|1[y = c] - p_c|`` of the softmax probabilities;
      the mean over the classes present in the non-void target (Berman's ``classes='present'``).
    - binary and multilabel: per channel, the hinge errors ``max(0, 1 - x s)`` of the logits
      ``x`` with signs ``s = 2 y - 1``; the mean over the channels with any non-void entry.

    Args:
        mode: ``multiclass``, ``binary`` or ``multilabel``; see :mod:`seglab.losses.modes`
            for the shapes.
        ignore_index: target value of pixels (multilabel: entries) left out of the loss and its
            gradient. ``None`` means every pixel is labeled.
        per_image: compute the loss of each image and average over the images with any
            non-void pixel, rather than once over the whole batch (the IoU that evaluation
            reports is of the whole split, so the batch is the closer surrogate; per image
            weighs every image's IoU alike).
    """

    def __init__(
        self,
        *,
        mode: str = "multiclass",
        ignore_index: int | None = None,
        per_image: bool = False,
    ) -> None:
        super().__init__()
        check_mode(type(self).__name__, mode, fits=MODES)
        self.mode = mode
        self.ignore_index = ignore_index
        self.per_image = per_image

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_logits_and_target(logits, target, self.mode)
        labels, valid = channel_targets(logits, target, self.mode, self.ignore_index)
        if self.mode == "multiclass":
            errors = (labels - probabilities(logits, self.mode)).abs()
        else:
            errors = 1 - logits.to(labels.dtype) * (2 * labels - 1)
        # columns: (pixels, channels) of the batch, or (pixels, images x channels) per image
        images, channels = logits.shape[:2]
        groups = images if self.per_image else 1
        columns = [
            t.reshape(groups, -1, channels).movedim(0, 1).reshape(-1, groups * channels)
            for t in (errors.movedim(1, -1), labels.movedim(1, -1), valid.movedim(1, -1))
        ]
        per_column = _lovasz_extension(*columns).view(groups, channels)
        labels_kept, valid_kept = (c.view(-1, groups, channels) for c in columns[1:])
        if self.mode == "multiclass":
            counted = (labels_kept * valid_kept).sum(0) > 0
        else:
            counted = valid_kept.any(0)
        counted = counted.to(per_column.dtype)
        per_group = (per_column * counted).sum(1) / counted.sum(1).clamp_min(1)
        groups_counted = valid_kept.any(0).any(1).to(per_column.dtype)
        return (per_group * groups_counted).sum() / groups_counted.sum().clamp_min(1)
