"""Strong perturbations of a batch of normalised images, drawn from a generator of the step.

Every random number comes from `step_generator`, seeded by the run's seed and the global step,
so a step perturbs its batch the same way in a resumed run as in the run it continues.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def step_generator(seed: int, step: int) -> torch.Generator:
    """A CPU generator for step ``step`` of a run seeded with ``seed``."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def _uniform(low: float, high: float, count: int, generator: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(count, generator=generator)


def colour_jitter(
    images: Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    strength: float,
    generator: torch.Generator,
) -> Tensor:
    """Random brightness, contrast and (for RGB) saturation per image, each factor drawn from
    ``[1 - strength, 1 + strength]``, on ``(N, C, H, W)`` images normalised with ``mean`` and
    ``std``; applied in [0, 1] colour space and normalised back."""
    n, channels = images.shape[:2]
    mean_t = images.new_tensor(list(mean))[:, None, None]
    std_t = images.new_tensor(list(std))[:, None, None]
    pixels = images * std_t + mean_t
    factors = [
        _uniform(1 - strength, 1 + strength, n, generator).to(images)[:, None, None, None]
        for _ in range(3)
    ]
    brightness, contrast, saturation = factors
    pixels = (pixels * brightness).clamp(0, 1)
    gray = pixels.mean(1, keepdim=True)
    pixels = (pixels - gray.mean((2, 3), keepdim=True)) * contrast + gray.mean((2, 3), True)
    pixels = pixels.clamp(0, 1)
    if channels == 3:
        gray = pixels.mean(1, keepdim=True)
        pixels = (gray + (pixels - gray) * saturation).clamp(0, 1)
    return (pixels - mean_t) / std_t


def cutmix_boxes(n: int, height: int, width: int, generator: torch.Generator) -> Tensor:
    """One random box per image as a ``(N, H, W)`` boolean mask: its area a uniform share of
    the image, its centre anywhere (the box is clipped at the border)."""
    area = torch.rand(n, generator=generator)
    box_h = (height * area.sqrt()).round()
    box_w = (width * area.sqrt()).round()
    centre_y = torch.rand(n, generator=generator) * height
    centre_x = torch.rand(n, generator=generator) * width
    top, bottom = centre_y - box_h / 2, centre_y + box_h / 2
    left, right = centre_x - box_w / 2, centre_x + box_w / 2
    rows = torch.arange(height) + 0.5
    columns = torch.arange(width) + 0.5
    inside_rows = (rows >= top[:, None]) & (rows < bottom[:, None])
    inside_columns = (columns >= left[:, None]) & (columns < right[:, None])
    return inside_rows[:, :, None] & inside_columns[:, None, :]


def cutmix(images: Tensor, targets: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Paste a random box of another image of the batch into each image, and the same box of
    that image's ``(N, H, W)`` targets into its targets, so pixels keep their labels."""
    n, _, height, width = images.shape
    partner = torch.randperm(n, generator=generator).to(images.device)
    boxes = cutmix_boxes(n, height, width, generator).to(images.device)
    mixed = torch.where(boxes[:, None], images[partner], images)
    return mixed, torch.where(boxes, targets[partner], targets)
