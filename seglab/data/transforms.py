"""Joint image/mask transforms built on torchvision.transforms.v2.

Images travel as ``tv_tensors.Image`` and masks as ``tv_tensors.Mask``, so every geometric
transform moves both the same way, photometric ones touch only the image, and padding fills
the mask with the void value. Masks are only ever resampled with nearest neighbour (its
half-pixel-centre variant, which lines up with the image's bilinear resampling).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from seglab.data.settings import normalised

InterpolationMode = v2.InterpolationMode


@dataclass(frozen=True)
class AugmentSettings:
    """``data.augment``: the random training augmentation (`train_transform`), checked when
    made, naming the key.

    Attributes:
        scale_range: ``(low, high)`` range of the random training rescale (before the crop);
            None keeps the size.
        crop_size: ``(height, width)`` of the random training crop; smaller images are
            padded with void. None trains on whole images.
        hflip: probability of a horizontal training flip.
        vflip: probability of a vertical training flip.
        color_jitter: ``brightness``, ``contrast``, ``saturation``, ``hue`` of the training
            colour jitter; None turns it off.
    """

    scale_range: Sequence[float] | None
    crop_size: Sequence[int] | None
    hflip: float
    vflip: float
    color_jitter: Mapping[str, float] | None

    def __post_init__(self) -> None:
        scale, crop = self.scale_range, self.crop_size
        jitter = self.color_jitter
        normalised(
            self,
            scale_range=None if scale is None else [float(value) for value in scale],
            crop_size=None if crop is None else [int(value) for value in crop],
            hflip=float(self.hflip),
            vflip=float(self.vflip),
            color_jitter=None if jitter is None else {k: float(v) for k, v in jitter.items()},
        )
        if self.scale_range is not None and not (
            len(self.scale_range) == 2 and 0 < self.scale_range[0] <= self.scale_range[1]
        ):
            raise ValueError(
                f"data.augment.scale_range={self.scale_range} must be [low, high] with "
                "0 < low <= high, e.g. [0.5, 2.0], or null to keep the size"
            )
        if self.crop_size is not None and not (
            len(self.crop_size) == 2 and min(self.crop_size) > 0
        ):
            raise ValueError(
                f"data.augment.crop_size={self.crop_size} must be [height, width] of positive "
                "sizes, e.g. [256, 256], or null to train on whole images"
            )
        for key in ("hflip", "vflip"):
            if not 0 <= getattr(self, key) <= 1:
                raise ValueError(
                    f"data.augment.{key}={getattr(self, key)} must be a probability in [0, 1]"
                )


def resize_pair(inpt: Any, size: list[int]) -> Any:
    """Resize an image bilinearly (antialiased) or a mask with nearest neighbour to ``size``."""
    if isinstance(inpt, tv_tensors.Mask):
        resized = TF.resize_image(
            inpt.as_subclass(Tensor)[None], size, interpolation=InterpolationMode.NEAREST_EXACT
        )[0]
        return tv_tensors.wrap(resized, like=inpt)
    return TF.resize(inpt, size, interpolation=InterpolationMode.BILINEAR, antialias=True)


class RandomScale(v2.Transform):
    """Rescale image and mask together by a factor drawn uniformly from ``scale_range``.

    Args:
        scale_range: ``(low, high)`` bounds of the factor applied to height and width alike,
            e.g. ``(0.5, 2.0)``; the aspect ratio is kept.
    """

    def __init__(self, scale_range: Sequence[float]) -> None:
        super().__init__()
        low, high = (float(value) for value in scale_range)
        if not 0 < low <= high:
            raise ValueError(f"scale_range={list(scale_range)} must satisfy 0 < low <= high")
        self.scale_range = (low, high)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = v2.query_size(flat_inputs)
        scale = torch.empty(()).uniform_(*self.scale_range).item()
        return {"size": [max(1, round(height * scale)), max(1, round(width * scale))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return resize_pair(inpt, params["size"])


class ResizeImage(v2.Transform):
    """Rescale only the image by ``scale``; the mask keeps the labels' own resolution.

    The model then runs at the lower resolution while metrics are computed on the full-size
    mask, after the logits are upsampled to it (see ``SegmentationTask``).

    Args:
        scale: factor applied to the image's height and width.
    """

    def __init__(self, scale: float) -> None:
        super().__init__()
        if scale <= 0:
            raise ValueError(f"data.eval_scale={scale} must be positive")
        self.scale = float(scale)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, tv_tensors.Image):
            return inpt
        height, width = inpt.shape[-2:]
        size = [max(1, round(height * self.scale)), max(1, round(width * self.scale))]
        return resize_pair(inpt, size)


def _to_normalised_float(mean: Sequence[float], std: Sequence[float]) -> list[v2.Transform]:
    return [
        # uint8 images become [0, 1] floats; masks keep their int64 class indices
        v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True),
        v2.Normalize(mean=list(mean), std=list(std)),
    ]


def train_transform(
    mean: Sequence[float],
    std: Sequence[float],
    ignore_index: int,
    crop_size: Sequence[int] | None = None,
    scale_range: Sequence[float] | None = None,
    hflip: float = 0.5,
    vflip: float = 0.0,
    color_jitter: dict[str, float] | None = None,
) -> v2.Compose:
    """Random scale, crop, flips and colour jitter, then float conversion and normalisation.

    Args:
        mean: per-channel normalisation mean.
        std: per-channel normalisation standard deviation.
        ignore_index: mask value of the padding a crop larger than the image adds.
        crop_size: ``(height, width)`` of the random crop; images smaller than it are padded
            (image with 0, mask with ``ignore_index``). None trains on whole images.
        scale_range: ``(low, high)`` range of the random rescale before cropping; None or
            ``(1, 1)`` keeps the size.
        hflip: probability of a horizontal flip.
        vflip: probability of a vertical flip (off for scenes with a sky and a ground).
        color_jitter: ``brightness``, ``contrast``, ``saturation``, ``hue`` strengths of
            ``torchvision.transforms.v2.ColorJitter``; None or all zero leaves colours alone.
    """
    steps: list[v2.Transform] = []
    if scale_range is not None and tuple(scale_range) != (1, 1):
        steps.append(RandomScale(scale_range))
    if crop_size is not None:
        fill = {tv_tensors.Image: 0, tv_tensors.Mask: ignore_index}
        steps.append(v2.RandomCrop(list(crop_size), pad_if_needed=True, fill=fill))
    if hflip > 0:
        steps.append(v2.RandomHorizontalFlip(hflip))
    if vflip > 0:
        steps.append(v2.RandomVerticalFlip(vflip))
    if color_jitter and any(float(value) > 0 for value in color_jitter.values()):
        steps.append(v2.ColorJitter(**{key: float(value) for key, value in color_jitter.items()}))
    return v2.Compose(steps + _to_normalised_float(mean, std))


def eval_transform(mean: Sequence[float], std: Sequence[float], scale: float = 1.0) -> v2.Compose:
    """Optional image-only rescale by ``scale``, then float conversion and normalisation."""
    steps: list[v2.Transform] = [] if scale == 1 else [ResizeImage(scale)]
    return v2.Compose(steps + _to_normalised_float(mean, std))


def pad_collate(
    samples: list[tuple[Tensor, Tensor, str]], ignore_index: int
) -> tuple[Tensor, Tensor, list[str]]:
    """Stack ``(image, mask, name)`` samples of different sizes, padding at the bottom and right.

    Images are padded with 0 (the mean colour once normalised) and masks with
    ``ignore_index``, so the padding counts in neither the loss nor the metrics. Images and
    masks are padded separately: with ``eval_scale`` the mask is larger than its image.
    """

    def pad(tensor: Tensor, height: int, width: int, value: float) -> Tensor:
        return F.pad(
            tensor, (0, width - tensor.shape[-1], 0, height - tensor.shape[-2]), value=value
        )

    images, masks, names = zip(*samples, strict=True)
    image_h, image_w = (max(image.shape[dim] for image in images) for dim in (-2, -1))
    mask_h, mask_w = (max(mask.shape[dim] for mask in masks) for dim in (-2, -1))
    return (
        torch.stack([pad(image, image_h, image_w, 0.0) for image in images]),
        torch.stack([pad(mask, mask_h, mask_w, ignore_index) for mask in masks]),
        list(names),
    )
