"""``data.label_map``: which raw mask value (or colour) is which class, and which are void.

Publishers store classes their own way: Cityscapes keeps 34 label ids of which 19 are trained
on, ADE20K and LoveDA keep 0 for "unlabelled" before classes 1..N, COCO-Stuff's ids go past
what 8 bits hold, VOC draws classes as colours. The label map says so in the data config, so
masks are read as they are distributed, and a checkpoint (whose data config holds the map)
reads them the same way in ``seglab-eval`` and ``seglab-predict``.

``data.label_map`` takes three forms:

- ``null``: the older keys decide. Raw value ``data.mask_values[i]`` (or ``i`` itself) is
  class ``i``, and raw ``data.ignore_index`` is void; RGB masks read through ``data.palette``
  and ``data.void_colours``. Those are label maps too (`legacy_tables`), of one value or colour
  per class.
- ``zero_is_void``: raw 0 is void and raw ``k`` is class ``k - 1`` for ``k`` in ``1..N``; a raw
  ``data.ignore_index`` above ``N`` stays void (ADE20K, LoveDA).
- a mapping of each name of ``data.classes`` to its raw values (``road: [7, 8]``) or colours
  (``road: [[128, 64, 128]]``), and of ``void`` to those read as void: many values to one
  class, any number of void values, 8- or 16-bit values.

A raw value the map does not cover is refused at setup, naming the file; ``seglab-data
stats`` lists every such value of a split (`UncoveredValues`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from seglab.visualization.tables import text_table

#: the one-word map of masks whose raw 0 is void and whose classes start at 1
ZERO_IS_VOID = "zero_is_void"
#: the key of a mapping that lists the raw values read as void
VOID_KEY = "void"
# the largest raw value a mask file holds (32-bit integer images)
_MAX_RAW = 2**31 - 1
#: What an uncovered raw value is called in reports: an int, or an ``(r, g, b)`` colour.
Raw = int | tuple[int, int, int]


def rgb_codes(rgb: np.ndarray) -> np.ndarray:
    """One integer per colour, so that colours are looked up like single values."""
    rgb = rgb.astype(np.int64).reshape(*rgb.shape[:-1], 3)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def colour_of(code: int) -> tuple[int, int, int]:
    """The ``(r, g, b)`` colour of an `rgb_codes` code."""
    return (code >> 16, (code >> 8) & 255, code & 255)


@dataclass(frozen=True)
class LabelTable:
    """Raw values (or colour codes) and the class index each reads as.

    Attributes:
        keys: sorted raw values, or `rgb_codes` of colours where ``colours``.
        targets: the class index of each key, ``ignore_index`` for a void one.
        colours: whether the keys are colours (read from RGB or palette masks).
        name: how errors name the map (``data.label_map``).
        remedy: what an error about a value the map does not cover tells the user to do.
    """

    keys: np.ndarray
    targets: np.ndarray
    colours: bool
    name: str
    remedy: str = ""
    # dense tables of 8- and 16-bit values, built on first use (`lookup`)
    _dense: dict[int, tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def of(
        cls, keys: Sequence[int], targets: Sequence[int], colours: bool, name: str, remedy: str = ""
    ) -> LabelTable:
        keys_array = np.asarray(keys, dtype=np.int64)
        order = np.argsort(keys_array, kind="stable")
        targets_array = np.asarray(targets, dtype=np.int64)[order]
        return cls(keys_array[order], targets_array, colours, name, remedy)

    def lookup(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The class index of each raw code, and where the map covers the code (elsewhere the
        index is meaningless). 8- and 16-bit values index a dense table, three times faster
        than a search of the keys, which colours and 32-bit values take."""
        if not self.colours and raw.dtype in (np.uint8, np.uint16):
            targets, known = self._dense_table(256 if raw.dtype == np.uint8 else 65536)
            return targets[raw], known[raw]
        position = np.searchsorted(self.keys, raw).clip(max=len(self.keys) - 1)
        return self.targets[position], self.keys[position] == raw

    def _dense_table(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        if size not in self._dense:
            inside = (self.keys >= 0) & (self.keys < size)
            targets = np.zeros(size, np.int64)
            known = np.zeros(size, bool)
            targets[self.keys[inside]] = self.targets[inside]
            known[self.keys[inside]] = True
            self._dense[size] = (targets, known)
        return self._dense[size]

    def raw_value(self, target: int) -> int | None:
        """The smallest raw value (or colour code) that reads as ``target``, None if none:
        what a mask written for this map stores for that class."""
        found = self.keys[self.targets == target]
        return int(found[0]) if len(found) else None

    def options(self) -> dict[str, Any]:
        """What decides how masks read; part of the scan cache key."""
        return {
            "keys": self.keys.tolist(),
            "targets": self.targets.tolist(),
            "colours": self.colours,
        }


def legacy_tables(
    num_classes: int,
    ignore_index: int,
    mask_values: Sequence[int] | None,
    palette: Sequence[Sequence[int]] | None,
    void_colours: Sequence[Sequence[int]],
) -> tuple[LabelTable, LabelTable | None]:
    """The maps of ``data.label_map: null``: raw ``mask_values[i]`` (or ``i``) is class ``i``
    and raw ``ignore_index`` is void where it is no class value; with a palette, colour
    ``palette[i]`` is class ``i`` and ``void_colours`` are void."""
    values = list(mask_values) if mask_values is not None else list(range(num_classes))
    void = [ignore_index] if ignore_index >= 0 and ignore_index not in values else []
    targets = list(range(num_classes)) + [ignore_index] * len(void)
    by_value = LabelTable.of(values + void, targets, False, "data.mask_values")
    if palette is None:
        return by_value, None
    colours = np.array([*palette, *void_colours], dtype=np.int64).reshape(-1, 3)
    targets = list(range(num_classes)) + [ignore_index] * len(void_colours)
    return by_value, LabelTable.of(rgb_codes(colours).tolist(), targets, True, "data.palette")


def label_table(label_map: Any, classes: Sequence[str], ignore_index: int) -> LabelTable | None:
    """``data.label_map`` as a table; None for ``null`` (`legacy_tables` decide).

    Raises:
        ValueError: naming ``data.label_map`` or its key, for another word than
            ``zero_is_void``, a class of ``data.classes`` without raw values, a key that is
            neither a class nor ``void``, a raw value given twice, or values mixed with colours.
    """
    if OmegaConf.is_config(label_map):
        label_map = OmegaConf.to_container(label_map, resolve=True)
    if label_map is None:
        return None
    count = len(classes)
    if label_map == ZERO_IS_VOID:
        void = [0] + ([ignore_index] if ignore_index > count else [])
        keys = list(range(1, count + 1)) + void
        remedy = (
            f"data.label_map={ZERO_IS_VOID} reads raw 0 as void and 1..{count} as the "
            f"{count} classes of data.classes: check data.classes, or map every raw value "
            "in data.label_map (class: [values], void: [values])"
        )
        targets = [*range(count), *[ignore_index] * len(void)]
        return LabelTable.of(keys, targets, False, f"data.label_map={ZERO_IS_VOID}", remedy)
    if not isinstance(label_map, Mapping):
        raise ValueError(
            f"data.label_map={label_map!r} must be {ZERO_IS_VOID}, null, or a mapping of each "
            "class of data.classes to its raw mask values and of void to the void values, "
            "e.g. {road: [7, 8], car: [26], void: [0, 255]}"
        )
    return _mapped_table(dict(label_map), list(classes), ignore_index)


def _mapped_table(label_map: dict[Any, Any], classes: list[str], ignore_index: int) -> LabelTable:
    if VOID_KEY in classes:
        raise ValueError(
            f"data.classes names a class {VOID_KEY!r}, which data.label_map keeps for the void "
            "values; rename the class (e.g. 'unlabelled') or map void pixels under "
            f"data.label_map.{VOID_KEY}"
        )
    for key in label_map:
        if str(key) not in (*classes, VOID_KEY):
            raise ValueError(
                f"data.label_map.{key} is neither a class of data.classes={classes} nor "
                f"{VOID_KEY}; the map's keys are the class names and {VOID_KEY}"
            )
    missing = [name for name in classes if not _items(label_map.get(name))]
    if missing:
        raise ValueError(
            f"data.label_map gives no raw value to class {missing[0]!r}; add "
            f"data.label_map.{missing[0]}=[<its raw mask values>] (every class of data.classes "
            "needs one)"
        )
    keys: list[int] = []
    targets: list[int] = []
    owners: dict[int, str] = {}
    kinds: set[bool] = set()
    for target, name in [*enumerate(classes), (ignore_index, VOID_KEY)]:
        codes, colours = _entry(name, label_map.get(name))
        kinds.update([colours] if codes else [])
        for code in codes:
            if code in owners:
                raw = list(colour_of(code)) if colours else code
                raise ValueError(
                    f"data.label_map gives raw {'colour' if colours else 'value'} {raw} to both "
                    f"{owners[code]!r} and {name!r}; each raw value reads as one class (or void)"
                )
            owners[code] = name
        keys += codes
        targets += [target] * len(codes)
    if len(kinds) > 1:
        raise ValueError(
            "data.label_map mixes raw values and [r, g, b] colours; masks hold one or the "
            "other, so give every class (and void) the same kind"
        )
    remedy = (
        "give each to a class (data.label_map.<class>: [values]) or to "
        f"data.label_map.{VOID_KEY}; `seglab-data stats` lists every raw value of a split "
        "that the map leaves out"
    )
    return LabelTable.of(keys, targets, kinds == {True}, "data.label_map", remedy)


def _items(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _entry(name: str, value: Any) -> tuple[list[int], bool]:
    """The codes of one key of the map and whether they are colours."""
    items = _items(value)
    if all(_is_int(item) and 0 <= item <= _MAX_RAW for item in items):
        return [int(item) for item in items], False
    if all(
        isinstance(item, list | tuple)
        and len(item) == 3
        and all(_is_int(v) and 0 <= v <= 255 for v in item)
        for item in items
    ):
        colours = np.array(items, dtype=np.int64).reshape(-1, 3)
        return rgb_codes(colours).tolist(), True
    raise ValueError(
        f"data.label_map.{name}={value!r} must list raw mask values (integers 0..{_MAX_RAW}, "
        "e.g. [7, 8]) or colours as [r, g, b] triples in 0..255 (e.g. [[128, 64, 128]])"
    )


@dataclass
class UncoveredValues:
    """The raw values of a split's masks that the label map does not cover: the pixels and
    the masks that hold each, and the first file found with it."""

    pixels: dict[Raw, int] = field(default_factory=dict)
    masks: dict[Raw, int] = field(default_factory=dict)
    example: dict[Raw, Path] = field(default_factory=dict)

    def record(self, path: Path, found: Mapping[Raw, int]) -> None:
        for raw, count in found.items():
            self.pixels[raw] = self.pixels.get(raw, 0) + count
            self.masks[raw] = self.masks.get(raw, 0) + 1
            self.example.setdefault(raw, path)

    def reader(self, survey: Callable[[Path], tuple[np.ndarray, dict[Raw, int]]]) -> Any:
        """A mask reader for the scan that reads uncovered pixels as void and records them;
        ``survey`` is `seglab.data.masks.MaskDecoder.survey`."""

        def read(path: Path) -> np.ndarray:
            labels, found = survey(path)
            self.record(path, found)
            return labels

        return read

    def rows(self) -> list[dict[str, Any]]:
        """One entry per value, most pixels first, as ``class_stats.json`` lists them."""
        order = sorted(self.pixels, key=lambda raw: (-self.pixels[raw], _sort_key(raw)))
        return [
            {
                "value": list(raw) if isinstance(raw, tuple) else raw,
                "pixels": self.pixels[raw],
                "masks": self.masks[raw],
                "example": str(self.example[raw]),
            }
            for raw in order
        ]


def _sort_key(raw: Raw) -> tuple[int, ...]:
    """Values before colours, each in order."""
    return (1, *raw) if isinstance(raw, tuple) else (0, raw)


def format_uncovered(uncovered: UncoveredValues) -> str:
    """The table ``seglab-data stats`` prints of the values the map leaves out."""
    rows = [
        [str(row["value"]), str(row["pixels"]), str(row["masks"]), row["example"]]
        for row in uncovered.rows()
    ]
    return text_table(["raw value", "pixels", "masks", "e.g."], rows, "<>><")
