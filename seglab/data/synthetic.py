"""Procedural shapes scenes: the built-in dataset that needs no download.

Each scene is a textured background with a few overlapping ellipses, rectangles and triangles.
The class of a pixel is decided by the SHAPE that covers it, never by its colour: colours,
sizes, aspect ratios and orientations are random and every shape has the area of the same disk
whatever its kind, so a model has to learn outlines and corners, and occlusion leaves partial
shapes to tell apart. Samples are a pure function of ``(seed, split, index)``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.utils.data import Dataset

from seglab.data.base import SegmentationDataModule
from seglab.data.metadata import Sample
from seglab.data.shapes import CLASSES, Shapes, render, render_layers

#: The classes of the masks in each task mode: the shapes' kinds, any shape against the
#: background, or each kind on a channel of its own (shapes may overlap).
MODE_CLASSES = {
    "multiclass": CLASSES,
    "binary": ("background", "foreground"),
    "multilabel": CLASSES[1:],
}
# Background waves have between 0.5 and 2.5 periods across the image: visible texture, yet
# smoother than any shape outline.
_BACKGROUND_CYCLES = (0.5, 2.5)
# Candidates per pick of `_pick_spread`; more centre candidates mean less occlusion.
_COLOUR_CANDIDATES = 8
_CENTRE_CANDIDATES = 3
# Scenes are drawn in blocks of this many, each block from its own generator: vectorised
# drawing, yet scene i depends only on (seed, split, i), never on how many scenes a split has.
BLOCK_SIZE = 64


def _pick_spread(candidates: Tensor, references: Tensor) -> Tensor:
    """Per slot in turn, the candidate farthest from ``references`` and the earlier picks.

    ``candidates`` is ``(N, K, C, D)``, ``references`` ``(N, R, D)``; returns ``(N, K, D)``.
    """
    n, k, c = candidates.shape[:3]
    for slot in range(k):
        distance = (
            torch.cdist(candidates[:, slot], references).amin(-1)
            if references.shape[1]
            else torch.zeros(n, c)
        )
        best = candidates[torch.arange(n), slot, distance.argmax(-1)]
        references = torch.cat([references, best[:, None]], dim=1)
    return references[:, -k:]


def block_seed(seed: int, split: str, block: int) -> int:
    """The seed of one block of scenes; hashing keeps the splits' streams apart for any seed."""
    digest = hashlib.blake2b(f"seglab.synthetic/{seed}/{split}/{block}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "little") & (2**63 - 1)


class ShapesOptions(NamedTuple):
    """What the generator draws. ``conf/data/synthetic.yaml`` holds their values and comments.

    Attributes:
        image_size: height and width of the square images.
        max_shapes: each scene holds between 1 and ``max_shapes`` shapes.
        min_size: smallest shape, as the diameter of its equal-area disk over ``image_size``.
        max_size: largest shape, in the same unit.
        min_aspect: smallest minor/major axis ratio; 1 gives only disks, squares and
            equilateral triangles.
        noise: standard deviation of the Gaussian pixel noise, on the [0, 1] scale.
        seed: base seed; the same ``(seed, split, index)`` always gives the same scene.
    """

    image_size: int
    max_shapes: int
    min_size: float
    max_size: float
    min_aspect: float
    noise: float
    seed: int

    def check(self, prefix: str) -> None:
        """Reject options that would give empty or degenerate scenes, naming ``prefix + key``."""
        if self.image_size < 8:
            raise ValueError(f"{prefix}image_size={self.image_size} must be at least 8 pixels")
        if self.max_shapes < 1:
            raise ValueError(f"{prefix}max_shapes={self.max_shapes} must be at least 1")
        if not 0 < self.min_size <= self.max_size <= 1:
            raise ValueError(
                f"{prefix}min_size={self.min_size} and {prefix}max_size={self.max_size} must "
                "satisfy 0 < min_size <= max_size <= 1 (fractions of image_size)"
            )
        if not 0 < self.min_aspect <= 1:
            raise ValueError(f"{prefix}min_aspect={self.min_aspect} must be in (0, 1]")
        if self.noise < 0:
            raise ValueError(f"{prefix}noise={self.noise} must be >= 0")


class SyntheticShapes(Dataset):
    """One split of shapes scenes, generated in memory when built.

    Args:
        num_samples: number of scenes.
        split: name of the split; it selects the seed stream, so splits never share scenes.
        options: what the generator draws.
        mean: per-channel mean the images are normalised with.
        std: per-channel standard deviation the images are normalised with.
        mode: the masks' task mode (`MODE_CLASSES`): multiclass labels each pixel with the
            kind of the shape on top, binary with shape or background, and multilabel with
            every kind of shape it lies in, on ``(3, H, W)`` channels; multilabel shapes are
            painted translucent, so that an overlap shows both.
    """

    def __init__(
        self,
        num_samples: int,
        split: str,
        options: ShapesOptions,
        mean: Sequence[float],
        std: Sequence[float],
        mode: str = "multiclass",
    ) -> None:
        options.check(prefix="")
        if num_samples < 1:
            raise ValueError(f"num_samples={num_samples} must be at least 1")
        self.split = split
        self.options = options
        blocks = [
            self._draw_block(torch.Generator().manual_seed(block_seed(options.seed, split, block)))
            for block in range(-(-num_samples // BLOCK_SIZE))
        ]
        backgrounds, shapes, noise_maps = zip(*blocks, strict=True)
        shapes = Shapes(*(torch.cat(field)[:num_samples] for field in zip(*shapes, strict=True)))
        background = torch.cat(backgrounds)[:num_samples]
        if mode == "multilabel":
            images, self.masks = render_layers(shapes, background)
        else:
            images, self.masks = render(shapes, background)
        if mode == "binary":
            self.masks = self.masks.clamp_max(1)
        images.add_(torch.cat(noise_maps)[:num_samples], alpha=options.noise).clamp_(0.0, 1.0)
        mean_t = torch.tensor([float(m) for m in mean])[:, None, None]
        std_t = torch.tensor([float(s) for s in std])[:, None, None]
        self.images = images.sub_(mean_t).div_(std_t)

    def _draw_block(self, generator: torch.Generator) -> tuple[Tensor, Shapes, Tensor]:
        """Backgrounds, shape parameters and noise of `BLOCK_SIZE` scenes."""
        n, size, k = BLOCK_SIZE, self.options.image_size, self.options.max_shapes

        def uniform(low: float, high: float, *shape: int) -> Tensor:
            return low + (high - low) * torch.rand(*shape, generator=generator)

        # Background: two random colours blended by two low-frequency plane waves.
        bg_colours = _pick_spread(
            uniform(0.0, 1.0, n, 2, _COLOUR_CANDIDATES, 3), torch.empty(n, 0, 3)
        )
        wave_angle = uniform(0.0, 2 * math.pi, n, 2)
        cycles = uniform(*_BACKGROUND_CYCLES, n, 2)
        phase = uniform(0.0, 2 * math.pi, n, 2)
        coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size
        fx = (2 * math.pi * cycles * wave_angle.cos())[..., None] * coords
        fy = (2 * math.pi * cycles * wave_angle.sin())[..., None] * coords + phase[..., None]
        blend = 0.5 + 0.25 * torch.sin(fx[..., None, :] + fy[..., :, None]).sum(1)
        backgrounds = torch.lerp(
            bg_colours[:, 0, :, None, None], bg_colours[:, 1, :, None, None], blend[:, None]
        )

        num_shapes = torch.randint(1, k + 1, (n, 1), generator=generator)
        kind = torch.randint(1, len(CLASSES), (n, k), generator=generator)
        kind = torch.where(torch.arange(k) < num_shapes, kind, 0)
        # Each centre is the candidate farthest from the centres below it: shapes still overlap,
        # but seldom bury each other, so that most are recognisable.
        center = _pick_spread(
            uniform(0.1 * size, 0.9 * size, n, k, _CENTRE_CANDIDATES, 2), torch.empty(n, 0, 2)
        )
        diameter = uniform(self.options.min_size * size, self.options.max_size * size, n, k)
        aspect = uniform(self.options.min_aspect, 1.0, n, k)
        angle = uniform(0.0, 2 * math.pi, n, k)
        # Each fill is the candidate farthest from the background colours and the fills below
        # it, so that every edge stays visible.
        colour = _pick_spread(uniform(0.0, 1.0, n, k, _COLOUR_CANDIDATES, 3), bg_colours)
        noise = torch.randn(n, 3, size, size, generator=generator)
        return backgrounds, Shapes(kind, center, diameter, aspect, angle, colour), noise

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> Sample:
        return self.images[index], self.masks[index], f"synthetic {self.split} sample {index}"


class SyntheticShapesDataModule(SegmentationDataModule):
    """Datamodule of `SyntheticShapes`: the default ``data`` of ``seglab-train``.

    Every argument is required: ``conf/data/synthetic.yaml`` holds the values, with the
    comments that say what they do, so that Python and command-line runs share one set.

    Args:
        image_size, max_shapes, min_size, max_size, min_aspect, noise, seed: the
            `ShapesOptions` of all three splits.
        num_train: scenes in the training split.
        num_val: scenes in the validation split.
        num_test: scenes in the test split.
        num_classes: the generator's class count in the task mode (``mode``, see
            `MODE_CLASSES`): 4 (multiclass), 2 (binary) or 3 (multilabel); ``classes`` names
            them in that order: they may be renamed, not added.
        **options: the other options of `SegmentationDataModule` (``classes``,
            ``ignore_index``, for which the generator draws no pixel, ``palette``, ``mean``,
            ``std`` and the groups ``loader``, ``splits`` and ``few_labels``); the images are
            RGB (``in_channels`` 3).
    """

    def __init__(
        self,
        image_size: int,
        num_train: int,
        num_val: int,
        num_test: int,
        max_shapes: int,
        min_size: float,
        max_size: float,
        min_aspect: float,
        noise: float,
        seed: int,
        num_classes: int,
        **options: Any,
    ) -> None:
        mode = str(options.get("mode", "multiclass"))
        drawn = MODE_CLASSES.get(mode, CLASSES)
        if num_classes != len(drawn):
            raise ValueError(
                f"data.num_classes={num_classes} but the shapes generator draws {len(drawn)} "
                f"classes {list(drawn)} in mode={mode}"
                + ("" if mode == "multiclass" else f" (data=synthetic_{mode})")
            )
        super().__init__(num_classes=num_classes, in_channels=3, **options)
        self.generator_options = ShapesOptions(
            image_size=int(image_size),
            max_shapes=int(max_shapes),
            min_size=float(min_size),
            max_size=float(max_size),
            min_aspect=float(min_aspect),
            noise=float(noise),
            seed=int(seed),
        )
        self.generator_options.check(prefix="data.")
        for key, count in (("num_train", num_train), ("num_val", num_val), ("num_test", num_test)):
            if count < 1:
                raise ValueError(f"data.{key}={count} must be at least 1")
        self.num_samples = {"train": int(num_train), "val": int(num_val), "test": int(num_test)}

    def training_size(self) -> tuple[str, Any, tuple[int, int]] | None:
        size = self.generator_options.image_size
        return "data.image_size", size, (size, size)

    def _build_dataset(self, split: str) -> SyntheticShapes:
        dataset = SyntheticShapes(
            self.num_samples[split], split, self.generator_options, self.mean, self.std, self.mode
        )
        sparse = self.few_labels.sparse
        if split == "train" and sparse is not None:
            for index in range(len(dataset)):
                name = dataset[index][2]
                dataset.masks[index] = torch.from_numpy(sparse(dataset.masks[index].numpy(), name))
        return dataset
