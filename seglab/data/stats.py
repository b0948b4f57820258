"""Class pixel statistics of a split and the median-frequency class weights derived from them,
and the per-channel mean and standard deviation of its images (``data.mean``, ``data.std``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from seglab.visualization.tables import text_table


@dataclass(frozen=True)
class ClassStatistics:
    """Per-class statistics of one split, in class order.

    Attributes:
        classes: class names.
        pixel_count: labelled pixels of each class.
        pixel_frequency: share of each class among the labelled (non-void) pixels.
        image_share: share of the images in which each class appears: what
            ``data.loader.repeat_threshold`` (class-balanced sampling) compares against.
        median_frequency_weights: ``median(freq) / freq(c)`` (Eigen & Fergus 2015), where
            ``freq(c)`` is the pixels of class ``c`` over all pixels of the images in which
            ``c`` appears; 0 for a class absent from the split, which no weight can help.
    """

    classes: list[str]
    pixel_count: list[int]
    pixel_frequency: list[float]
    image_share: list[float]
    median_frequency_weights: list[float]

    def to_dict(self) -> dict[str, list]:
        return asdict(self)


def class_statistics(
    classes: Sequence[str], class_pixels: Tensor, image_pixels: Tensor
) -> ClassStatistics:
    """Statistics from per-image counts.

    Args:
        classes: class names, one per column of ``class_pixels``.
        class_pixels: ``(num_images, num_classes)`` labelled pixels per class and image.
        image_pixels: ``(num_images,)`` pixels of each image, void included.
    """
    class_pixels = class_pixels.to(torch.float64)
    totals = class_pixels.sum(0)
    labelled = totals.sum()
    if labelled == 0:
        raise ValueError("the split has no labelled pixel: every pixel is void")
    appears = class_pixels > 0
    area = (appears * image_pixels.to(torch.float64)[:, None]).sum(0)
    present = totals > 0
    frequency = torch.where(present, totals / area.clamp_min(1), torch.zeros_like(totals))
    # the mean of the two middle values for an even count, as numpy's median
    median = frequency[present].quantile(0.5)
    weights = torch.where(present, median / frequency.clamp_min(1e-12), torch.zeros_like(totals))
    return ClassStatistics(
        classes=list(classes),
        pixel_count=[int(value) for value in totals],
        pixel_frequency=(totals / labelled).tolist(),
        image_share=appears.to(torch.float64).mean(0).tolist(),
        median_frequency_weights=weights.tolist(),
    )


def format_statistics(stats: ClassStatistics) -> str:
    """A table of the statistics, as ``seglab-data stats`` prints it."""
    rows = [
        [name, str(count), f"{frequency:.4f}", f"{share:.3f}", f"{weight:.4f}"]
        for name, count, frequency, share, weight in zip(
            stats.classes,
            stats.pixel_count,
            stats.pixel_frequency,
            stats.image_share,
            stats.median_frequency_weights,
            strict=True,
        )
    ]
    header = ["class", "pixels", "frequency", "images", "median-freq weight"]
    return text_table(header, rows, "<>>>>")


@dataclass(frozen=True)
class ChannelStatistics:
    """Per-channel statistics of the images of one split, as the model's inputs are scaled
    before normalisation (`seglab.data.images.ImageReader`).

    Attributes:
        mean: mean of each channel over every pixel of every image.
        std: standard deviation of each channel over the same pixels (of the population).
        images: how many images they were computed on.
        pixels: how many pixels of each channel.
    """

    mean: list[float]
    std: list[float]
    images: int
    pixels: int

    def to_dict(self) -> dict[str, list[float] | int]:
        return asdict(self)

    def overrides(self) -> str:
        """The overrides that normalise a run with these statistics."""

        def listed(values: list[float]) -> str:
            return "[" + ",".join(f"{value:.6g}" for value in values) + "]"

        return f"data.mean={listed(self.mean)} data.std={listed(self.std)}"


def channel_statistics(images: Iterable[Tensor]) -> ChannelStatistics:
    """Mean and standard deviation of each channel of ``(C, H, W)`` images of any sizes,
    accumulated in float64 over all their pixels (not averaged per image)."""
    sums = squares = None
    count = pixels = 0
    for image in images:
        values = image.to(torch.float64).flatten(1)
        if sums is None:
            sums, squares = values.sum(1), values.square().sum(1)
        else:
            sums, squares = sums + values.sum(1), squares + values.square().sum(1)
        count, pixels = count + 1, pixels + values.shape[1]
    if sums is None or squares is None or pixels == 0:
        raise ValueError("the split has no image to compute data.mean and data.std from")
    mean = sums / pixels
    std = (squares / pixels - mean.square()).clamp_min(0).sqrt()
    return ChannelStatistics(mean.tolist(), std.tolist(), count, pixels)
