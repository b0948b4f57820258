"""How a mask file becomes class indices: raw values or colours looked up in the label map.

Every value of a mask must be a class or void (`seglab.data.label_map` says which): anything
else is an error naming the file, and where the values found show what the config gets wrong
(0/255 masks without ``mask_values``, classes numbered from 1, a JPEG file) the error says what
to set. Single-channel masks of 8 or 16 bits (PIL modes L, P, I;16, I) are read as they are
stored, never clipped to 8 bits. A mask is never resized: an image of another size is aligned
to its mask (`align_to_mask`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from seglab.data.label_map import LabelTable, Raw, colour_of, legacy_tables, rgb_codes
from seglab.data.metadata import DatasetError

#: PIL's names of lossy formats: they change values where regions meet, so no class survives
#: them exactly (an MPO is a JPEG with more frames)
LOSSY_FORMATS = ("JPEG", "MPO")
# how many distinct values or colours an error lists
_MAX_LISTED_VALUES = 10


def _listed(values: Sequence[int]) -> str:
    """``values`` as a command line writes a list (``[0,255]``), long runs shortened."""
    values = list(values)
    if len(values) > 6 and values == list(range(values[0], values[-1] + 1)):
        return f"[{values[0]},{values[1]},...,{values[-1]}]"
    return "[" + ",".join(str(value) for value in values) + "]"


class MaskDecoder:
    """Reads a mask file into ``(H, W)`` int64 class indices, ``ignore_index`` on void.

    With a ``label_map`` (``data.label_map``, `seglab.data.label_map.label_table`) it alone
    decides: a map of raw values reads single-channel masks (8/16-bit grayscale, or palette
    PNGs, whose pixel values are the palette indices), a map of colours reads RGB(A) and
    palette masks by their colours; ``palette`` then only draws masks. Without one, the older
    keys are its label map (`seglab.data.label_map.legacy_tables`): single-channel masks hold
    raw values, class ``i`` being ``mask_values[i]`` (or ``i`` itself when None) and a raw
    value equal to ``ignore_index`` that is no class value void; RGB(A) masks hold colours,
    class ``i`` being ``palette[i]`` and ``void_colours`` void. Without a map of colours, an
    RGB mask whose three channels are equal (a grayscale mask saved as RGB) reads as
    grayscale. Any other value, and any JPEG mask, is an error naming the file.

    Args:
        num_classes: number of classes.
        ignore_index: class index of void pixels.
        mask_values: raw pixel value of each class, in class order (e.g. ``[0, 255]``).
        palette: RGB colour of each class, for RGB masks.
        void_colours: RGB colours of void pixels in RGB masks.
        label_map: the raw values or colours of every class and of void; excludes
            ``mask_values`` and ``void_colours``.
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int,
        mask_values: Sequence[int] | None = None,
        palette: Sequence[Sequence[int]] | None = None,
        void_colours: Sequence[Sequence[int]] = (),
        label_map: LabelTable | None = None,
    ) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.mask_values = None if mask_values is None else [int(v) for v in mask_values]
        self.palette = None if palette is None else [[int(v) for v in rgb] for rgb in palette]
        self.void_colours = [[int(v) for v in rgb] for rgb in void_colours]
        self.label_map = label_map
        if label_map is not None:
            if self.mask_values is not None or self.void_colours:
                key = "data.mask_values" if self.mask_values is not None else "data.void_colours"
                raise ValueError(
                    f"{key} and data.label_map both say how masks read; give the raw values "
                    "of each class (and of void) in data.label_map alone and set "
                    f"{key}={'null' if key.endswith('values') else '[]'}"
                )
            self._values = None if label_map.colours else label_map
            self._colours = label_map if label_map.colours else None
            return
        if self.mask_values is not None:
            if len(self.mask_values) != num_classes:
                raise ValueError(
                    f"data.mask_values={self.mask_values} has {len(self.mask_values)} values "
                    f"but there are {num_classes} classes; give one raw pixel value per class"
                )
            if len(set(self.mask_values)) != num_classes:
                raise ValueError(f"data.mask_values={self.mask_values} repeats a value")
        self._values, self._colours = legacy_tables(
            num_classes, ignore_index, self.mask_values, self.palette, self.void_colours
        )

    def options(self) -> dict[str, Any]:
        """What decides how a mask reads; part of the scan cache key."""
        return {
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
            "mask_values": self.mask_values,
            "palette": self.palette,
            "void_colours": self.void_colours,
            "label_map": None if self.label_map is None else self.label_map.options(),
        }

    def _read(self, path: Path) -> tuple[np.ndarray, LabelTable | None, str, bool]:
        """The raw codes of a mask, the table that reads them, their kind and whether the
        file is lossy."""
        with Image.open(path) as mask:
            lossy = mask.format in LOSSY_FORMATS
            by_colour = self._values is None
            if mask.mode in ("RGB", "RGBA") or (by_colour and mask.mode in ("P", "PA")):
                rgb = np.asarray(mask.convert("RGB"))
                grey = self._colours is None and (rgb == rgb[..., :1]).all()
                raw = rgb[..., 0] if grey else rgb_codes(rgb)
                table, kind = (self._values, "value") if grey else (self._colours, "colour")
                return raw, table, kind, lossy
            if mask.mode == "F":
                raise DatasetError(
                    f"{path}: mask is a floating-point image; save masks as integer class "
                    "values (8- or 16-bit PNG)"
                )
            if mask.mode in ("1", "LA", "PA"):
                mask = mask.convert("L")
            # kept 8- or 16-bit for the table's dense lookup; PIL's own widths, never clipped
            return np.asarray(mask), self._values, "value", lossy

    def _table(self, path: Path, raw: np.ndarray, table: LabelTable | None) -> LabelTable:
        if table is not None:
            return table
        if self.label_map is not None:
            found = np.unique(raw)[:_MAX_LISTED_VALUES].tolist()
            raise DatasetError(
                f"{path}: mask is single-channel with values {found} but data.label_map gives "
                "colours; map the raw values instead (e.g. road: [7, 8]), or save masks as RGB"
            )
        colours = [list(colour_of(code)) for code in np.unique(raw)[:_MAX_LISTED_VALUES].tolist()]
        raise DatasetError(
            f"{path}: mask is an RGB image with colours {colours} but data.palette is not "
            "set; give the RGB colour of each class in data.palette, in the order of "
            "data.classes (or map them in data.label_map), or save masks as single-channel "
            "class values"
        )

    def __call__(self, path: Path) -> np.ndarray:
        raw, table, kind, lossy = self._read(path)
        labels, known = self._table(path, raw, table).lookup(raw)
        if lossy:
            found = "" if known.all() else f": {self._describe_unknown(raw, known, kind)}"
            raise DatasetError(
                f"{path}: mask is a JPEG file, whose lossy compression changes the values where "
                f"regions meet{found}; save masks as PNG (and set data.layout.mask_extension=.png)"
            )
        if not known.all():
            raise DatasetError(f"{path}: {self._describe_unknown(raw, known, kind)}")
        return labels

    def survey(self, path: Path) -> tuple[np.ndarray, dict[Raw, int]]:
        """The class indices of a mask with the raw values the map does not cover read as
        void, and the pixels of each such value: what ``seglab-data stats`` reports, where
        training refuses the file. A JPEG mask is refused all the same."""
        raw, table, kind, lossy = self._read(path)
        labels, known = self._table(path, raw, table).lookup(raw)
        if lossy:
            return self(path), {}
        codes, counts = np.unique(raw[~known], return_counts=True)
        describe = colour_of if kind == "colour" else int
        found = {describe(int(code)): int(count) for code, count in zip(codes, counts, strict=True)}
        return np.where(known, labels, self.ignore_index), found

    def _describe_unknown(self, raw: np.ndarray, known: np.ndarray, kind: str) -> str:
        unknown, counts = np.unique(raw[~known], return_counts=True)
        unknown, counts = unknown[:_MAX_LISTED_VALUES].tolist(), counts[:_MAX_LISTED_VALUES]
        if self.label_map is not None:
            described = [list(colour_of(c)) if kind == "colour" else c for c in unknown]
            pixels = counts.tolist()
            listed = ", ".join(
                f"{value} ({count} px)" for value, count in zip(described, pixels, strict=True)
            )
            return (
                f"mask has raw {kind}s {listed} that {self.label_map.name} does not cover: "
                f"{self.label_map.remedy}"
            )
        if kind == "colour":
            colours = [list(colour_of(code)) for code in unknown]
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
        if 0 in classes and set(classes) <= {0, *one_based} and self.num_classes in classes:
            return (
                f"; masks whose raw 0 is void and whose classes are 1..{self.num_classes} "
                "(ADE20K, LoveDA) need data.label_map=zero_is_void"
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
    label_map: LabelTable | None = None,
) -> MaskDecoder | MultilabelMaskDecoder:
    """The decoder of a dataset's masks: one file per image (`MaskDecoder`), or with
    ``class_folders`` one file per class (`MultilabelMaskDecoder`, whose files hold no colours
    and whose two raw values ``mask_values`` gives, so no label map)."""
    if class_folders:
        if label_map is not None:
            raise ValueError(
                "data.label_map reads one mask per image, but mode=multilabel reads one mask "
                "per class, whose [no, yes] raw values are data.mask_values; set "
                "data.label_map=null"
            )
        return MultilabelMaskDecoder(ignore_index, mask_values)
    return MaskDecoder(num_classes, ignore_index, mask_values, palette, void_colours, label_map)


def align_to_mask(pixels: Tensor, mask_size: Sequence[int]) -> Tensor:
    """``(C, H, W)`` image ``pixels`` resized to the mask's ``(height, width)`` (bilinear,
    antialiased) where their sizes differ; the scan let only pairs of one aspect ratio through."""
    if tuple(pixels.shape[-2:]) == tuple(mask_size):
        return pixels
    return TF.resize(
        pixels, list(mask_size), interpolation=TF.InterpolationMode.BILINEAR, antialias=True
    )
