"""How a mask file becomes class indices: raw values or colours looked up in the label map.

Every value of a mask must be a class or void: anything else is an error naming the file, and
where the values found show what the config gets wrong (0/255 masks without ``mask_values``,
classes numbered from 1, a JPEG file) the error says what to set. A mask is never resized: an
image of another size is aligned to its mask (`align_to_mask`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from seglab.data.metadata import DatasetError

#: PIL's names of lossy formats: they change values where regions meet, so no class survives
#: them exactly (an MPO is a JPEG with more frames)
LOSSY_FORMATS = ("JPEG", "MPO")
# how many distinct values or colours an error lists
_MAX_LISTED_VALUES = 10


def _rgb_codes(rgb: np.ndarray) -> np.ndarray:
    """One integer per colour, so that colours can be looked up like single values."""
    rgb = rgb.astype(np.int64).reshape(*rgb.shape[:-1], 3)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _listed(values: Sequence[int]) -> str:
    """``values`` as a command line writes a list (``[0,255]``), long runs shortened."""
    values = list(values)
    if len(values) > 6 and values == list(range(values[0], values[-1] + 1)):
        return f"[{values[0]},{values[1]},...,{values[-1]}]"
    return "[" + ",".join(str(value) for value in values) + "]"


class MaskDecoder:
    """Reads a mask file into ``(H, W)`` int64 class indices, ``ignore_index`` on void.

    Single-channel masks (8/16-bit grayscale, or palette PNGs, whose pixel values are the
    palette indices) hold raw values: class ``i`` is ``mask_values[i]``, or ``i`` itself when
    ``mask_values`` is None, and a raw value equal to ``ignore_index`` that is no class value
    is void. RGB(A) masks hold colours: class ``i`` is ``palette[i]`` and ``void_colours``
    are void; without a palette, an RGB mask whose three channels are equal (a grayscale mask
    saved as RGB) reads as grayscale. Any other value, and any JPEG mask, is an error naming
    the file.

    Args:
        num_classes: number of classes.
        ignore_index: class index of void pixels.
        mask_values: raw pixel value of each class, in class order (e.g. ``[0, 255]``).
        palette: RGB colour of each class, for RGB masks.
        void_colours: RGB colours of void pixels in RGB masks.
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int,
        mask_values: Sequence[int] | None = None,
        palette: Sequence[Sequence[int]] | None = None,
        void_colours: Sequence[Sequence[int]] = (),
    ) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.mask_values = None if mask_values is None else [int(v) for v in mask_values]
        self.palette = None if palette is None else [[int(v) for v in rgb] for rgb in palette]
        self.void_colours = [[int(v) for v in rgb] for rgb in void_colours]
        if self.mask_values is not None:
            if len(self.mask_values) != num_classes:
                raise ValueError(
                    f"data.mask_values={self.mask_values} has {len(self.mask_values)} values "
                    f"but there are {num_classes} classes; give one raw pixel value per class"
                )
            if len(set(self.mask_values)) != num_classes:
                raise ValueError(f"data.mask_values={self.mask_values} repeats a value")
        values = self.mask_values if self.mask_values is not None else list(range(num_classes))
        void = [ignore_index] if ignore_index >= 0 and ignore_index not in values else []
        self._values = self._table(
            values + void, list(range(num_classes)) + [ignore_index] * len(void)
        )
        self._colours = None
        if self.palette is not None:
            colours = np.array(self.palette + self.void_colours, dtype=np.int64)
            codes = _rgb_codes(colours).tolist()
            targets = list(range(num_classes)) + [ignore_index] * len(self.void_colours)
            self._colours = self._table(codes, targets)

    @staticmethod
    def _table(keys: Sequence[int], targets: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        keys_array = np.asarray(keys, dtype=np.int64)
        order = np.argsort(keys_array, kind="stable")
        return keys_array[order], np.asarray(targets, dtype=np.int64)[order]

    def options(self) -> dict[str, Any]:
        """What decides how a mask reads; part of the scan cache key."""
        return {
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
            "mask_values": self.mask_values,
            "palette": self.palette,
            "void_colours": self.void_colours,
        }

    def __call__(self, path: Path) -> np.ndarray:
        with Image.open(path) as mask:
            lossy = mask.format in LOSSY_FORMATS
            if mask.mode in ("RGB", "RGBA"):
                rgb = np.asarray(mask.convert("RGB"))
                grey = self._colours is None and (rgb == rgb[..., :1]).all()
                raw = rgb[..., 0].astype(np.int64) if grey else _rgb_codes(rgb)
                table, kind = (self._values, "value") if grey else (self._colours, "colour")
            else:
                if mask.mode in ("1", "LA"):
                    mask = mask.convert("L")
                raw, table, kind = np.asarray(mask).astype(np.int64), self._values, "value"
        if table is None:
            colours = [
                [code >> 16, (code >> 8) & 255, code & 255]
                for code in np.unique(raw)[:_MAX_LISTED_VALUES].tolist()
            ]
            raise DatasetError(
                f"{path}: mask is an RGB image with colours {colours} but data.palette is not "
                "set; give the RGB colour of each class in data.palette, in the order of "
                "data.classes, or save masks as single-channel class values"
            )
        keys, targets = table
        position = np.searchsorted(keys, raw).clip(max=len(keys) - 1)
        known = keys[position] == raw
        if lossy:
            found = "" if known.all() else f": {self._describe_unknown(raw, known, kind)}"
            raise DatasetError(
                f"{path}: mask is a JPEG file, whose lossy compression changes the values where "
                f"regions meet{found}; save masks as PNG (and set data.layout.mask_extension=.png)"
            )
        if not known.all():
            raise DatasetError(f"{path}: {self._describe_unknown(raw, known, kind)}")
        return targets[position]

    def _describe_unknown(self, raw: np.ndarray, known: np.ndarray, kind: str) -> str:
        unknown = np.unique(raw[~known])[:_MAX_LISTED_VALUES].tolist()
        if kind == "colour":
            colours = [[code >> 16, (code >> 8) & 255, code & 255] for code in unknown]
            return (
                f"mask has colours {colours} that are in neither data.palette={self.palette} "
                f"nor data.void_colours={self.void_colours}"
            )
        values = (
            f"data.mask_values={self.mask_values}"
            if self.mask_values is not None
            else f"a class index 0..{self.num_classes - 1}"
        )
        return (
            f"mask has values {unknown} that are neither {values} nor "
            f"data.ignore_index={self.ignore_index}{self._hint(np.unique(raw).tolist())}"
        )

    def _hint(self, found: list[int]) -> str:
        """What to set when the values a mask holds show how its classes are stored."""
        if self.mask_values is not None:
            return ""
        classes = [value for value in found if value != self.ignore_index]
        one_based = list(range(1, self.num_classes + 1))
        if classes and set(classes) <= set(one_based) and self.num_classes in classes:
            return (
                f"; masks that number the classes from 1 need data.mask_values="
                f"{_listed(one_based)} (or their values shifted down by 1)"
            )
        if len(found) == self.num_classes:
            return (
                f"; if {found} are the classes' raw values in class order, set "
                f"data.mask_values={_listed(found)}"
            )
        return ""


class MultilabelMaskDecoder:
    """Reads the masks of one image, one file per class, into ``(num_classes, H, W)`` int64
    channels: 1 where the pixel has the class, 0 where not, ``ignore_index`` on void.

    Each file is single-channel: raw value ``mask_values[0]`` is "no", ``mask_values[1]``
    "yes" (``[0, 1]`` when None; ``[0, 255]`` for masks saved black and white), and a raw
    value equal to ``ignore_index`` that is neither is void. Any other value, and class masks
    of different sizes, are errors naming the file.

    Args:
        ignore_index: value of void pixels.
        mask_values: the raw "no" and "yes" values of every class mask.
    """

    def __init__(self, ignore_index: int, mask_values: Sequence[int] | None = None) -> None:
        if mask_values is not None and len(mask_values) != 2:
            raise ValueError(
                f"data.mask_values={list(mask_values)} must be the two raw values [no, yes] of "
                "every class mask in mode=multilabel, e.g. [0, 255]"
            )
        self.channel = MaskDecoder(2, ignore_index, mask_values)

    def options(self) -> dict[str, Any]:
        """What decides how masks read; part of the scan cache key."""
        return {"mode": "multilabel", **self.channel.options()}

    def __call__(self, paths: tuple[Path, ...]) -> np.ndarray:
        channels: list[np.ndarray] = []
        for path in paths:
            channel = self.channel(path)
            if channels and channel.shape != channels[0].shape:
                raise DatasetError(
                    f"{path}: mask is {channel.shape[1]}x{channel.shape[0]} (WxH) but "
                    f"{paths[0]} is {channels[0].shape[1]}x{channels[0].shape[0]}; the class "
                    "masks of an image must have its size"
                )
            channels.append(channel)
        return np.stack(channels)


def mask_decoder(
    num_classes: int,
    ignore_index: int,
    mask_values: Sequence[int] | None,
    palette: Sequence[Sequence[int]] | None,
    void_colours: Sequence[Sequence[int]],
    class_folders: bool,
) -> MaskDecoder | MultilabelMaskDecoder:
    """The decoder of a dataset's masks: one file per image (`MaskDecoder`), or with
    ``class_folders`` one file per class (`MultilabelMaskDecoder`, whose files hold no colours)."""
    if class_folders:
        return MultilabelMaskDecoder(ignore_index, mask_values)
    return MaskDecoder(num_classes, ignore_index, mask_values, palette, void_colours)


def align_to_mask(pixels: Tensor, mask_size: Sequence[int]) -> Tensor:
    """``(C, H, W)`` image ``pixels`` resized to the mask's ``(height, width)`` (bilinear,
    antialiased) where their sizes differ; the scan let only pairs of one aspect ratio through."""
    if tuple(pixels.shape[-2:]) == tuple(mask_size):
        return pixels
    return TF.resize(
        pixels, list(mask_size), interpolation=TF.InterpolationMode.BILINEAR, antialias=True
    )
