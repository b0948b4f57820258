"""Inference on whole images of any size: sliding windows, blending and test-time augmentation.

A model trained on crops may see a large image whole (memory grows with the image, and the
context differs from training) or window by window. Windows run in small batches and their
logits are added, weighted, into one preallocated ``(C, H, W)`` buffer, so memory is bounded
by the window and batch size plus the output, not by a forward pass over the full image.
Validation, ``seglab-eval`` and ``seglab-predict`` all build it from the ``inference`` node of
the run's config (``conf/inference/default.yaml``), so its options have one home.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from seglab.models.layers import resize
from seglab.task_modes import Multiclass, TaskMode

BLENDS = ("gaussian", "uniform")


def window_starts(size: int, window: int, overlap: float) -> list[int]:
    """Offsets of windows of length ``window`` covering ``size``, the last flush with the end.

    Consecutive windows overlap by at least ``overlap`` of their length.
    """
    stride = max(1, math.floor(window * (1 - overlap)))
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return starts


def blend_weights(height: int, width: int, blend: str) -> Tensor:
    """Per-pixel weight of a window's logits: a window's border, which sees the least context,
    counts least under ``gaussian`` (sigma 1/8 of the window, as nnU-Net does); ``uniform``
    averages the windows equally."""
    if blend == "uniform":
        return torch.ones(height, width)

    def bump(length: int) -> Tensor:
        centre, sigma = (length - 1) / 2, max(length / 8, 1e-3)
        return torch.exp(-0.5 * ((torch.arange(length) - centre) / sigma) ** 2)

    return bump(height)[:, None] * bump(width)[None, :]


@dataclass(frozen=True)
class TTA:
    """Test-time augmentation: the passes whose probabilities an `Inferer` averages.

    Args:
        hflip: also run the mirrored image and mirror its output back.
        scales: run the image rescaled by each factor (windows keep their size, so they cover
            more or less of the scene); the outputs are resized back to the image.
    """

    hflip: bool = False
    scales: Sequence[float] = (1.0,)

    def __post_init__(self) -> None:
        scales = tuple(float(s) for s in self.scales)
        if not scales or min(scales) <= 0:
            raise ValueError(f"tta.scales={list(scales)} must list positive factors, e.g. [1.0]")
        object.__setattr__(self, "scales", scales)


class Inferer:
    """Logits or class probabilities of a model for whole images, however large.

    Args:
        model: maps ``(N, C_in, h, w)`` images of any size to ``(N, C, h, w)`` logits (a
            ``Segmenter``); called as is, so put it in eval mode first.
        tile: window size, one int or ``[height, width]``; None runs every image whole. A
            window is clamped to the image along a side where the image is smaller, so an
            image no larger than one window runs whole (the model pads it to its stride).
        overlap: fraction of a window shared with its neighbour, in ``[0, 1)``; overlapping
            windows hide the weaker predictions near window borders.
        blend: ``gaussian`` weights each window's logits towards its centre, ``uniform``
            averages them; see ``blend_weights``.
        tile_batch_size: windows run together in one forward pass; bounds memory.
        tta: test-time augmentation; with several passes (scales or ``hflip``) their
            probabilities (the task mode's: softmax or sigmoid) are averaged. None runs the
            image once, as it is.
        image_scale: factor every image is resized by before the model sees it, for a model
            that was validated on rescaled images (``data.eval_scale``) and now gets them at
            their own size; it multiplies each of ``tta.scales``.
        mode: the task mode (`seglab.task_modes`), which turns logits into the probabilities that
            test-time augmentation averages; multiclass (softmax) when None.

    The defaults are those of ``conf/inference/default.yaml``, the options' home.
    """

    def __init__(
        self,
        model: nn.Module,
        tile: int | Sequence[int] | None = None,
        overlap: float = 0.25,
        blend: str = "gaussian",
        tile_batch_size: int = 4,
        tta: TTA | None = None,
        image_scale: float = 1.0,
        mode: TaskMode | None = None,
    ) -> None:
        if tile is not None:
            size = [int(tile)] * 2 if isinstance(tile, int | float) else [int(t) for t in tile]
            if len(size) != 2 or min(size) < 1:
                raise ValueError(f"tile={tile} must be a positive int or [height, width]")
            tile = size
        if not 0 <= overlap < 1:
            raise ValueError(f"overlap={overlap} must be in [0, 1): the share of a window")
        if blend not in BLENDS:
            raise ValueError(f"blend={blend!r} is not one of {', '.join(BLENDS)}")
        if tile_batch_size < 1:
            raise ValueError(f"tile_batch_size={tile_batch_size} must be positive")
        if image_scale <= 0:
            raise ValueError(f"image_scale={image_scale} must be positive")
        tta = tta or TTA()
        self.model = model
        self.mode = Multiclass() if mode is None else mode
        self.tile = tile
        self.overlap = float(overlap)
        self.blend = blend
        self.tile_batch_size = int(tile_batch_size)
        self.passes = [
            (scale * image_scale, flip)
            for scale in tta.scales
            for flip in (False, True)[: 1 + tta.hflip]
        ]

    @torch.no_grad()
    def logits(self, images: Tensor) -> Tensor:
        """``(N, C, H, W)`` logits of ``(N, C_in, H, W)`` images; with test-time augmentation,
        the logits of the averaged probabilities (the same labels, and a valid loss input)."""
        if len(self.passes) > 1:
            return self.mode.logits(self.probabilities(images))
        scale, flip = self.passes[0]
        if self.tile is None and (scale, flip) == (1.0, False):
            return self.model(images)
        return torch.stack([self._pass(image, scale, flip) for image in images])

    @torch.no_grad()
    def probabilities(self, images: Tensor) -> Tensor:
        """``(N, C, H, W)`` probabilities of the task mode (softmax over the classes, or a
        sigmoid per channel), averaged over the test-time augmentations."""
        return torch.stack([self._image_probabilities(image) for image in images])

    def _image_probabilities(self, image: Tensor) -> Tensor:
        total = None
        for scale, flip in self.passes:
            probabilities = self.mode.probabilities(self._pass(image, scale, flip), dim=0)
            total = probabilities if total is None else total.add_(probabilities)
            del probabilities
        return total.div_(len(self.passes))

    def _pass(self, image: Tensor, scale: float, flip: bool) -> Tensor:
        """Logits ``(C, H, W)`` of one augmentation of a ``(C_in, H, W)`` image."""
        height, width = image.shape[-2:]
        if scale != 1:
            size = [max(1, round(height * scale)), max(1, round(width * scale))]
            image = resize(image[None], size, antialias=scale < 1)[0]
        if flip:
            image = image.flip(-1)
        logits = self._windows(image)
        if flip:
            logits = logits.flip(-1)
        if scale != 1:
            logits = resize(logits[None], (height, width))[0]
        return logits

    def _windows(self, image: Tensor) -> Tensor:
        """Blended logits of ``image`` run window by window, ``tile_batch_size`` at a time."""
        height, width = image.shape[-2:]
        if self.tile is None:
            return self.model(image[None])[0]
        tile_h, tile_w = min(self.tile[0], height), min(self.tile[1], width)
        corners = [
            (top, left)
            for top in window_starts(height, tile_h, self.overlap)
            for left in window_starts(width, tile_w, self.overlap)
        ]
        if len(corners) == 1:
            return self.model(image[None])[0]
        weight = blend_weights(tile_h, tile_w, self.blend).to(image.device, image.dtype)
        total = coverage = None
        for first in range(0, len(corners), self.tile_batch_size):
            batch = corners[first : first + self.tile_batch_size]
            windows = torch.stack([image[:, y : y + tile_h, x : x + tile_w] for y, x in batch])
            logits = self.model(windows)
            if total is None:
                total = logits.new_zeros(logits.shape[1], height, width)
                coverage = logits.new_zeros(height, width)
            for (top, left), window_logits in zip(batch, logits, strict=True):
                total[:, top : top + tile_h, left : left + tile_w].addcmul_(window_logits, weight)
                coverage[top : top + tile_h, left : left + tile_w].add_(weight)
            del windows, logits
        return total.div_(coverage)
