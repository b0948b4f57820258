"""What every dataset hands out and says of itself: its items and batches, its error, and the
class metadata (names, void value, palette, normalisation) every datamodule checks the same way.

It imports no datamodule, so that the mask decoders, the scan and the folder layout, which the
datamodules import, can use it without an import cycle.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from seglab.task_modes import MODES

#: What every dataset item is: ``(image, mask, name)``; the name says where the sample comes
#: from (a file path, or a generator index), so that an error in training can point at it.
Sample = tuple[Tensor, Tensor, str]
#: What every dataloader yields: the stacked images and masks and the samples' names.
Batch = tuple[Tensor, Tensor, list[str]]

# ImageNet's normalisation: what a checkpoint whose data config names no mean/std was using
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DatasetError(ValueError):
    """A problem with the files of a dataset (missing, unreadable, inconsistent), or a setting
    they cannot satisfy (more folds than training samples), found at setup.

    Its message names the file or folder and what to do; ``seglab.workflows.build`` reports it as a
    one-line error before training starts.
    """


def count_class_pixels(mask: Tensor, num_classes: int) -> Tensor:
    """Labelled pixels of each class in one mask: ``(H, W)`` class indices are counted per
    class; a multilabel ``(num_classes, H, W)`` mask counts each channel's positive pixels."""
    if mask.dim() == 3:
        return (mask == 1).flatten(1).sum(1)
    labelled = mask[(mask >= 0) & (mask < num_classes)]
    return torch.bincount(labelled, minlength=num_classes)


def default_palette(num_classes: int) -> list[list[int]]:
    """The PASCAL VOC colour map: distinct, reproducible colours for any class count.

    Each class index's bits are spread over the high bits of R, G and B, so neighbouring
    indices get clearly different colours and index 0 (usually background) is black.
    """
    palette = []
    for index in range(num_classes):
        rgb = [0, 0, 0]
        code = index
        for shift in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((code >> channel) & 1) << shift
            code >>= 3
        palette.append(rgb)
    return palette


def check_classes(mode: str, classes: Sequence[str], num_classes: int, ignore_index: int) -> None:
    """Refuse a task mode, class list or void value that disagree, naming the key."""
    if mode not in MODES:
        raise ValueError(f"data.mode={mode} is not one of: {', '.join(MODES)}")
    if len(classes) != num_classes:
        raise ValueError(
            f"data.num_classes={num_classes} but data.classes lists {len(classes)} names "
            f"{list(classes)}; they must agree"
        )
    if 0 <= ignore_index < num_classes:
        raise ValueError(
            f"data.ignore_index={ignore_index} is a valid class index "
            f"(0..{num_classes - 1}, {classes[ignore_index]!r}); void pixels "
            "need a value outside the classes, e.g. 255 or -100"
        )


def check_normalisation(in_channels: int, mean: Sequence[float], std: Sequence[float]) -> None:
    """Refuse a channel count that ``mean`` and ``std`` do not match, naming the key."""
    if in_channels < 1:
        raise ValueError(
            f"data.in_channels={in_channels} must be positive: 3 for RGB, 1 for grayscale, "
            "or the band count of multi-band images"
        )
    for key, values in (("mean", mean), ("std", std)):
        if len(values) != in_channels:
            raise ValueError(
                f"data.{key}={list(values)} must have one value per image channel "
                f"(data.in_channels={in_channels})"
            )
    if any(value <= 0 for value in std):
        raise ValueError(f"data.std={list(std)} must be positive")


def class_palette(
    palette: Sequence[Sequence[int]] | None, classes: Sequence[str]
) -> list[list[int]]:
    """``data.palette`` as lists of ints, or `default_palette` when None; refused unless it
    gives one RGB triple in 0..255 per class."""
    if palette is None:
        return default_palette(len(classes))
    colours = [[int(value) for value in rgb] for rgb in palette]
    if len(colours) != len(classes):
        raise ValueError(
            f"data.palette has {len(colours)} colours but data.num_classes="
            f"{len(classes)}; give one RGB triple per class"
        )
    for index, rgb in enumerate(colours):
        if len(rgb) != 3 or not all(0 <= value <= 255 for value in rgb):
            raise ValueError(
                f"data.palette[{index}]={rgb} (class {classes[index]!r}) must be an "
                "RGB triple of integers in 0..255"
            )
    return colours
