"""Boundary metrics of a split: Boundary IoU and the 95th-percentile Hausdorff distance (HD95).

mIoU is dominated by the interiors of large regions, so a model whose outlines are a few pixels
off scores almost as well as one that traces them. Boundary IoU (Cheng et al., CVPR 2021)
scores only the band of each mask within ``d`` pixels of its contour; HD95 says how far, in
pixels, the predicted contour strays from the true one.

Both are computed from one pair of label maps per image, at the labels' resolution, on the
device the logits are on. A pixel of class ``c`` lies in the band of ``c`` when a pixel of
another label, or the image border, lies within Chebyshev distance ``d`` of it: the same band
as the reference implementation's (``mask_to_boundary`` of the boundary-iou-api), which pads the
mask with zeros and erodes it ``d`` times by a 3x3 square. Since every pixel carries one label,
one pass over the label map finds the bands of all classes at once, instead of one erosion per
class.

Void pixels (``ignore_index`` in the target) belong to neither mask: they are taken out of the
prediction too, and a void region bounds a mask as the image border does. So a prediction is
neither rewarded nor penalised for what it says about void pixels, and the contour along a void
region is where both masks end.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric

HD_PERCENTILE = 0.95
#: pairwise distances computed at once in the Hausdorff distance (bounds its memory)
_DISTANCE_BLOCK = 1 << 22


def boundary_width(height: int, width: int, dilation_ratio: float) -> int:
    """The band's width ``d`` in pixels: ``dilation_ratio`` times the image diagonal, rounded
    half to even as the reference's ``int(round(...))`` does, and at least 1."""
    return max(1, int(round(dilation_ratio * math.hypot(height, width))))


def contours(labels: Tensor, outside: int) -> Tensor:
    """Pixels of ``labels`` ``(N, H, W)`` with another label or the image border among their 8
    neighbours: the band of width 1 of every class at once (``(N, H, W)`` bool). ``outside``
    is a value no label takes, given to the pixels beyond the border.

    The 3x3 window's maximum and minimum differ exactly when it holds two labels; both are
    separable, so each is two element-wise passes along each axis.
    """
    padded = F.pad(labels, (1, 1, 1, 1), value=outside)
    high = _window3(_window3(padded, torch.maximum, -1), torch.maximum, -2)
    low = _window3(_window3(padded, torch.minimum, -1), torch.minimum, -2)
    return high != low


def _window3(x: Tensor, op: Callable[[Tensor, Tensor], Tensor], dim: int) -> Tensor:
    """``op`` (maximum or minimum) over windows of 3 along ``dim``, 2 shorter than ``x``."""
    size = x.shape[dim] - 2
    return op(op(x.narrow(dim, 0, size), x.narrow(dim, 1, size)), x.narrow(dim, 2, size))


def dilate(mask: Tensor, radius: int) -> Tensor:
    """``mask`` ``(..., H, W)`` bool dilated by a ``(2 radius + 1)`` square, outside the image
    counting as False; in O(log radius) passes per axis, whatever the radius."""
    for dim in (-1, -2):
        mask = _window_any(mask, radius, dim)
    return mask


def _window_any(mask: Tensor, radius: int, dim: int) -> Tensor:
    """Whether any of ``mask[i - radius : i + radius + 1]`` along ``dim`` is set.

    Windows of doubling span are OR-ed from two overlapping halves, then the full window from
    two overlapping windows of the largest span that fits.
    """
    if radius == 0:
        return mask
    size = mask.shape[dim]
    pad_shape = list(mask.shape)
    pad_shape[dim] = radius
    pad = mask.new_zeros(pad_shape)
    x = torch.cat([pad, mask, pad], dim=dim)
    window = 2 * radius + 1
    span = 1
    while span * 2 <= window:
        length = x.shape[dim] - span
        x = x.narrow(dim, 0, length) | x.narrow(dim, span, length)
        span *= 2
    return x.narrow(dim, 0, size) | x.narrow(dim, window - span, size)


class BoundaryMetric(Metric):
    """Boundary IoU per class over a whole split, and optionally HD95 per class.

    Boundary IoU of class ``c`` is ``|G_d & P_d| / |G_d | P_d|``, where ``G_d`` is the band of
    the target's mask of ``c`` within ``d`` pixels of its contour (inner band: the band
    intersected with the mask) and ``P_d`` that of the prediction. The intersection and union
    are counted over every image of the split and divided once at the end, as mIoU's confusion
    matrix is; a class with an empty union over the split (in neither the target nor the
    prediction) is NaN and left out of ``mBoundaryIoU``.

    HD95 of class ``c`` in one image is the larger of the two directed 95th percentiles of the
    Euclidean distances from each contour pixel (band of width 1) of one mask to the nearest of
    the other's, as MONAI's ``compute_hausdorff_distance(percentile=95)``. It is averaged over
    the images whose target and prediction both hold ``c``; an image where only one of them
    does has no distance to measure and is left out (Boundary IoU already counts that miss).
    A class never in both is NaN and left out of ``mHD95``. HD95 is computed image by image
    and class by class, with the host reading each one's contour pixels: it costs far more
    than Boundary IoU.

    Args:
        num_classes: class count ``C``; predictions are ``(N, C, H, W)`` logits or ``(N, H, W)``
            labels, targets ``(N, H, W)`` labels.
        ignore_index: target value of void pixels (see the module docstring).
        dilation_ratio: the band's width as a share of the image diagonal (0.02 in the paper),
            rounded to whole pixels, at least 1 (``boundary_width``).
        hd95: also compute HD95.
    """

    full_state_update = False

    def __init__(
        self, num_classes: int, ignore_index: int, dilation_ratio: float = 0.02, hd95: bool = False
    ) -> None:
        super().__init__()
        if isinstance(dilation_ratio, bool) or not isinstance(dilation_ratio, int | float):
            raise ValueError(f"dilation_ratio={dilation_ratio!r} must be a number, e.g. 0.02")
        if not 0 < dilation_ratio < 1:
            raise ValueError(
                f"dilation_ratio={dilation_ratio} must be in (0, 1): the band's width as a share "
                "of the image diagonal, e.g. 0.02"
            )
        if not isinstance(hd95, bool):
            raise ValueError(f"hd95={hd95!r} must be true or false")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.dilation_ratio = float(dilation_ratio)
        self.hd95 = hd95
        zeros = torch.zeros(num_classes, dtype=torch.long)
        self.add_state("intersection", default=zeros.clone(), dist_reduce_fx="sum")
        self.add_state("union", default=zeros.clone(), dist_reduce_fx="sum")
        if hd95:
            self.add_state(
                "distance_sum", torch.zeros(num_classes, dtype=torch.float64), dist_reduce_fx="sum"
            )
            self.add_state("distance_images", zeros.clone(), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        if preds.ndim == target.ndim + 1:
            preds = preds.argmax(dim=1)
        target, preds = self._labels(target), self._labels(preds, void=target == self.ignore_index)
        labels = torch.cat([target, preds])
        edges = contours(labels, outside=self.num_classes + 1)
        width = boundary_width(*labels.shape[-2:], self.dilation_ratio)
        bands = dilate(edges, width - 1)
        void = self.num_classes
        # a confusion matrix of the band pixels, whose row or column ``void`` is "not in a band"
        in_band = torch.where(bands, labels, void).long()
        n = target.shape[0]
        joint = torch.bincount(
            (in_band[:n] * (void + 1) + in_band[n:]).flatten(), minlength=(void + 1) ** 2
        ).view(void + 1, void + 1)
        intersection = joint.diagonal()[:void]
        self.intersection += intersection
        self.union += joint.sum(dim=1)[:void] + joint.sum(dim=0)[:void] - intersection
        if self.hd95:
            self._update_hd95(labels[:n], labels[n:], edges[:n], edges[n:])

    def _labels(self, labels: Tensor, void: Tensor | None = None) -> Tensor:
        """``labels`` with void pixels (``ignore_index``, or where ``void`` is set) as
        ``num_classes``, in the smallest integer type that holds them and a border value."""
        dtype = torch.uint8 if self.num_classes + 2 <= 256 else torch.int32
        if void is None:
            void = labels == self.ignore_index
        return torch.where(void, self.num_classes, labels).to(dtype)

    def _update_hd95(
        self, target: Tensor, preds: Tensor, target_edges: Tensor, pred_edges: Tensor
    ) -> None:
        classes = self.num_classes
        for i in range(target.shape[0]):
            both = (
                torch.bincount(target[i].flatten().long(), minlength=classes + 1)[:classes] > 0
            ) & (torch.bincount(preds[i].flatten().long(), minlength=classes + 1)[:classes] > 0)
            if not bool(both.any()):
                continue
            target_points, target_classes = _points(target[i], target_edges[i])
            pred_points, pred_classes = _points(preds[i], pred_edges[i])
            for c in both.nonzero().flatten().tolist():
                distance = hd95(target_points[target_classes == c], pred_points[pred_classes == c])
                self.distance_sum[c] += distance
                self.distance_images[c] += 1

    def compute(self) -> dict[str, Tensor]:
        """``BoundaryIoU`` per class and its mean ``mBoundaryIoU``; with ``hd95``, ``HD95`` per
        class (pixels) and ``mHD95``. NaN marks a class with no value, left out of the mean."""
        iou = self.intersection.double() / self.union.double()
        scores = {"BoundaryIoU": iou.float(), "mBoundaryIoU": iou.nanmean().float()}
        if self.hd95:
            distance = self.distance_sum / self.distance_images.double()
            scores["HD95"] = distance.float()
            scores["mHD95"] = distance.nanmean().float()
        return scores


def _points(labels: Tensor, edges: Tensor) -> tuple[Tensor, Tensor]:
    """The ``(row, column)`` coordinates of one image's contour pixels, and their labels."""
    points = edges.nonzero()
    return points.float(), labels[edges].long()


def hd95(first: Tensor, second: Tensor) -> Tensor:
    """Symmetric 95th-percentile Hausdorff distance between two non-empty point sets ``(K, 2)``:
    the larger of the two directed 95th percentiles (linear interpolation, as numpy's)."""
    return torch.maximum(_directed(first, second), _directed(second, first))


def _directed(source: Tensor, target: Tensor) -> Tensor:
    """95th percentile of the distances from each point of ``source`` to its nearest in
    ``target``, in blocks of rows that keep the distance matrix small."""
    rows = max(1, _DISTANCE_BLOCK // max(1, target.shape[0]))
    nearest = torch.cat(
        [
            torch.cdist(block, target, compute_mode="donot_use_mm_for_euclid_dist").amin(dim=1)
            for block in source.split(rows)
        ]
    )
    return torch.quantile(nearest.double(), HD_PERCENTILE)
