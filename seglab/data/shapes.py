"""Drawing shapes: which pixels an ellipse, rectangle or triangle covers, and scenes painted
from them with the mask of what lies where.

Every shape has the area of the disk its size names, whatever its kind and aspect ratio, so
that size is no cue to class; `seglab.data.synthetic` draws the shapes of its scenes and
paints them with `render` or `render_layers`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

# What the generator draws, in class-index order; configs may rename the classes, not add any.
CLASSES = ("background", "ellipse", "rectangle", "triangle")
ELLIPSE, RECTANGLE, TRIANGLE = 1, 2, 3
# how much of what lies below a shape shows through it in multilabel scenes, where a pixel
# under two shapes has both classes and so both must be visible
LAYER_OPACITY = 0.6

# Squared ratio between a kind's major half-axis and the radius of the disk of equal area (for
# aspect 1): the rectangle's half-side is sqrt(pi / 4) r and the triangle's circumradius
# sqrt(4 pi / (3 sqrt 3)) r, which makes the kinds equally frequent and size no cue to class.
_AREA_FACTOR = {ELLIPSE: 1.0, RECTANGLE: math.pi / 4, TRIANGLE: 4 * math.pi / (3 * math.sqrt(3))}
# Outward normals of the edges of an upright equilateral triangle with circumradius 1; its
# inradius is 1/2.
_TRIANGLE_NORMALS = [
    (math.cos(math.pi / 2 + 2 * math.pi * j / 3), math.sin(math.pi / 2 + 2 * math.pi * j / 3))
    for j in range(3)
]


class Shapes(NamedTuple):
    """Shapes of ``N`` scenes, up to ``K`` each, painted in slot order (later ones on top).

    Attributes:
        kind: ``(N, K)`` int64 class index of each shape; 0 leaves the slot empty.
        center: ``(N, K, 2)`` x and y of the centre, in pixels.
        size: ``(N, K)`` diameter in pixels of the disk with the same area as the shape.
        aspect: ``(N, K)`` minor/major axis ratio in (0, 1].
        angle: ``(N, K)`` rotation in radians.
        colour: ``(N, K, 3)`` RGB fill in [0, 1].
    """

    kind: Tensor
    center: Tensor
    size: Tensor
    aspect: Tensor
    angle: Tensor
    colour: Tensor


def _linear_form(ax: Tensor, ay: Tensor, center: Tensor, coords: Tensor) -> Tensor:
    """``ax * (x - cx) + ay * (y - cy)`` at every pixel centre, for each of N shapes."""
    fx = ax[:, None] * (coords - center[:, :1])
    fy = ay[:, None] * (coords - center[:, 1:])
    return fx[:, None, :] + fy[:, :, None]


def shape_masks(
    kind: Tensor, center: Tensor, size: Tensor, aspect: Tensor, angle: Tensor, image_size: int
) -> Tensor:
    """Which pixel centres of ``(N, image_size, image_size)`` lie inside each of N shapes.

    Arguments are one shape per scene, shaped as one slot of `Shapes` (``(N,)`` / ``(N, 2)``).
    Each kind is tested only on its own scenes, in the shape's frame scaled to the unit circle,
    where every test is a few linear forms of the pixel coordinates.
    """
    coords = torch.arange(image_size, dtype=torch.float32) + 0.5
    inside = torch.zeros(kind.shape[0], image_size, image_size, dtype=torch.bool)
    for shape_kind, area_factor in _AREA_FACTOR.items():
        index = (kind == shape_kind).nonzero().squeeze(1)
        if index.numel() == 0:
            continue
        major = size[index] / 2 * torch.sqrt(area_factor / aspect[index])
        minor = major * aspect[index]
        cos, sin = angle[index].cos(), angle[index].sin()
        # (u, v) = rotated coordinates over (major, minor): u = ux * dx + uy * dy, likewise v.
        ux, uy, vx, vy = cos / major, sin / major, -sin / minor, cos / minor
        c = center[index]
        if shape_kind == TRIANGLE:
            edges = [
                _linear_form(nx * ux + ny * vx, nx * uy + ny * vy, c, coords)
                for nx, ny in _TRIANGLE_NORMALS
            ]
            inside[index] = torch.maximum(torch.maximum(edges[0], edges[1]), edges[2]) <= 0.5
            continue
        u = _linear_form(ux, uy, c, coords)
        v = _linear_form(vx, vy, c, coords)
        if shape_kind == ELLIPSE:
            inside[index] = u.square_().add_(v.square_()) <= 1
        else:
            inside[index] = torch.maximum(u.abs_(), v.abs_()) <= 1
    return inside


def render(shapes: Shapes, background: Tensor) -> tuple[Tensor, Tensor]:
    """Paint ``shapes`` over ``(N, 3, H, W)`` backgrounds; returns images and class masks.

    Later slots cover earlier ones: the topmost slot of every pixel is found first, and both
    the image and the mask take that one shape's colour and class, so the mask always labels
    the visible shape.
    """
    n, k = shapes.kind.shape
    top = torch.zeros(n, *background.shape[2:], dtype=torch.int64)
    for slot in range(k):
        inside = shape_masks(
            shapes.kind[:, slot],
            shapes.center[:, slot],
            shapes.size[:, slot],
            shapes.aspect[:, slot],
            shapes.angle[:, slot],
            background.shape[-1],
        )
        top.masked_fill_(inside, slot + 1)
    # Slot 0 stands for the background: class 0, colour taken from `background` below.
    kinds = torch.cat([torch.zeros(n, 1, dtype=torch.int64), shapes.kind], dim=1)
    masks = kinds.gather(1, top.flatten(1)).view_as(top)
    colours = torch.cat([torch.zeros(n, 1, 3), shapes.colour], dim=1).transpose(1, 2)
    fills = colours.gather(2, top.flatten(1)[:, None].expand(-1, 3, -1)).view_as(background)
    images = torch.where((top == 0)[:, None], background, fills)
    return images, masks


def render_layers(shapes: Shapes, background: Tensor) -> tuple[Tensor, Tensor]:
    """Paint ``shapes`` translucently (`LAYER_OPACITY`) over ``(N, 3, H, W)`` backgrounds;
    returns images and ``(N, 3, H, W)`` multilabel masks, channel ``k - 1`` being 1 wherever
    a shape of kind ``k`` lies, on top or under another."""
    n, k = shapes.kind.shape
    images = background.clone()
    masks = torch.zeros(n, len(CLASSES) - 1, *background.shape[2:], dtype=torch.bool)
    for slot in range(k):
        kind = shapes.kind[:, slot]
        inside = shape_masks(
            kind,
            shapes.center[:, slot],
            shapes.size[:, slot],
            shapes.aspect[:, slot],
            shapes.angle[:, slot],
            background.shape[-1],
        )
        painted = torch.lerp(images, shapes.colour[:, slot, :, None, None], LAYER_OPACITY)
        images = torch.where(inside[:, None], painted, images)
        for shape_kind in (ELLIPSE, RECTANGLE, TRIANGLE):
            masks[:, shape_kind - 1] |= inside & (kind == shape_kind)[:, None, None]
    return images, masks.long()
