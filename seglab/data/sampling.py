"""Class-balanced sampling of training images: repeat factor sampling (Gupta et al., LVIS, 2019).

A class seen in few training images is seen in few batches, however its loss is weighted.
Repeat factor sampling shows each image more often the rarer the rarest class in it is, so
that an epoch still holds every image at least once (unlike drawing with replacement, which
leaves some out) while the images of rare classes come back more often.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import Sampler

log = logging.getLogger(__name__)


def check_repeat_threshold(threshold: float | None) -> float | None:
    """``data.loader.repeat_threshold`` as a float in (0, 1], or None; ValueError naming the key."""
    if threshold is None:
        return None
    threshold = float(threshold)
    if not 0 < threshold <= 1:
        raise ValueError(
            f"data.loader.repeat_threshold={threshold} must be in (0, 1] (the share of training "
            "images below which a class is repeated, e.g. 0.3), or null for uniform sampling"
        )
    return threshold


def repeat_factors(class_pixels: Tensor, threshold: float) -> Tensor:
    """How often each image is shown per epoch, from its labelled pixels per class.

    With ``f(c)`` the share of images in which class ``c`` appears, class ``c`` gets
    ``r(c) = max(1, sqrt(threshold / f(c)))`` and an image the largest ``r(c)`` of its classes:
    classes in at least ``threshold`` of the images are not repeated, and an image with none
    of its pixels labelled is shown once.

    Args:
        class_pixels: ``(num_images, num_classes)`` labelled pixels per image and class.
        threshold: the image share at and above which a class is not repeated.
    """
    appears = class_pixels > 0
    share = appears.to(torch.float64).mean(0)
    per_class = (threshold / share.clamp_min(1e-12)).sqrt().clamp_min(1.0)
    return torch.where(appears, per_class, torch.ones_like(per_class)).amax(1)


class RepeatFactorSampler(Sampler[int]):
    """Each epoch: every image ``floor(r)`` times, plus once more for a share ``r - floor(r)``
    of the images, drawn in proportion to that remainder, all shuffled.

    The number of extra images is the rounded sum of the remainders, so an epoch always has the
    same length (which Lightning's distributed wrapper needs). The draws depend only on
    ``seed`` and the epoch Lightning sets, so a resumed run draws what an unbroken one would.
    """

    def __init__(self, factors: Tensor, seed: int) -> None:
        if factors.dim() != 1 or len(factors) == 0 or bool((factors < 1).any()):
            raise ValueError("repeat factors must be a non-empty 1-D tensor of values >= 1")
        factors = factors.to(torch.float64)
        self.seed = int(seed)
        self.epoch = 0
        self.whole = factors.floor().to(torch.int64)
        self.remainder = factors - self.whole
        self.extra = int(round(float(self.remainder.sum())))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return int(self.whole.sum()) + self.extra

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        indices = torch.repeat_interleave(torch.arange(len(self.whole)), self.whole)
        if self.extra:
            chosen = torch.multinomial(self.remainder, self.extra, generator=generator)
            indices = torch.cat([indices, chosen])
        order = torch.randperm(len(indices), generator=generator)
        return iter(indices[order].tolist())


def balanced_sampler(class_pixels: Tensor, threshold: float) -> RepeatFactorSampler:
    """The class-balanced sampler of training images with ``class_pixels`` per class.

    Its draws are seeded from torch's seed, which ``seed_everything`` sets from the run's
    ``seed``, so a run with the same seed draws the same epochs.
    """
    factors = repeat_factors(class_pixels, threshold)
    log.info(
        "data.loader.repeat_threshold=%s: an epoch shows %.2f times the %d training images",
        threshold,
        float(factors.mean()),
        len(factors),
    )
    return RepeatFactorSampler(factors, torch.initial_seed())
