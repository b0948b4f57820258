"""Label Studio's JSON export of brush annotations (``brushlabels`` results).

A brush result holds its label(s) and ``rle``: the RGBA image of the stroke
(``original_height`` x ``original_width`` x 4 bytes, row by row), packed by Label Studio's
run-length coder. Its bit stream (most significant bit of each byte first) starts with the
value count (32 bits), the word size less one (5 bits) and four run-length field sizes, each
less one (4 bits each); then chunks until the count is reached: a flag bit, a 2-bit choice of
field size, a length less one in that many bits, and either one word repeated (flag 1) or
that many words (flag 0). A pixel belongs to the stroke where its alpha is 128 or more.

Each task's first annotation that was not cancelled is imported; its results are drawn in
their order, later over earlier, as Label Studio stacks them. The images are not in the export:
``data.image`` names an uploaded file (``/data/upload/<project>/<8 hex>-<name>``), a file of
local storage (``/data/local-files/?d=<path>``) or a URL, found in ``--images`` by its file
name, with or without the upload prefix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np

from seglab.data.importers.dataset import (
    Export,
    Sample,
    class_list,
    image_size,
    refuse_missing_images,
    refuse_unannotated,
    unique_names,
)
from seglab.data.metadata import DatasetError

#: the prefix Label Studio gives an uploaded file's name
UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")


class _Bits:
    """A big-endian bit reader over ``data``: fields read from a text of 0s and 1s (``int(...,
    2)`` is the fastest way Python has to read a few bits), long runs of words through numpy."""

    def __init__(self, data: bytes) -> None:
        self.bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
        self.text = (self.bits + ord("0")).tobytes().decode("ascii")
        self.position = 0

    def read(self, width: int) -> int:
        end = self.position + width
        if end > len(self.text):
            raise ValueError("the stream ends inside a field")
        value = int(self.text[self.position : end], 2)
        self.position = end
        return value

    def words(self, count: int, width: int) -> np.ndarray:
        """The next ``count`` unsigned integers of ``width`` bits each."""
        end = self.position + count * width
        if end > len(self.bits):
            raise ValueError("the stream ends inside a field")
        fields = self.bits[self.position : end].reshape(count, width).astype(np.int64)
        self.position = end
        return fields @ (1 << np.arange(width - 1, -1, -1, dtype=np.int64))


def decode_rle(rle: Sequence[int]) -> np.ndarray:
    """The values (uint8) that Label Studio's run-length coder packed into ``rle``."""
    bits = _Bits(bytes(rle))
    count = bits.read(32)
    word = bits.read(5) + 1
    sizes = [bits.read(4) + 1 for _ in range(4)]
    values = np.zeros(count, dtype=np.uint8)
    filled = 0
    while filled < count:
        repeated = bits.read(1)
        length = bits.read(sizes[bits.read(2)]) + 1
        end = min(filled + length, count)
        if repeated:
            values[filled:end] = bits.read(word)
        else:
            values[filled:end] = (
                bits.words(end - filled, word)
                if end - filled > 16
                else [bits.read(word) for _ in range(end - filled)]
            )
        filled = end
    return values


def stroke(result: dict, where: str) -> np.ndarray:
    """A brush result's pixels (boolean, height x width)."""
    height, width = result["original_height"], result["original_width"]
    try:
        values = decode_rle(result["value"]["rle"])
    except (ValueError, KeyError, TypeError) as error:
        raise DatasetError(f"{where}: its brush RLE does not decode ({error})") from None
    if values.size != height * width * 4:
        raise DatasetError(
            f"{where}: its brush RLE holds {values.size} values, not {height}x{width}x4"
        )
    return values.reshape(height, width, 4)[..., 3] >= 128


def read_label_studio(
    export: Path, images: Path | None, classes: Sequence[str] | None, keep_unannotated: bool
) -> Export:
    """The Label Studio JSON export ``export``, its images in ``images`` (default: the
    export's folder)."""
    tasks = _load(export)
    folder = images or export.parent
    chosen: dict[str, tuple[Path | None, list[dict]]] = {}
    unannotated, missing = [], []
    for task in tasks:
        where = f"{export} task {task.get('id')}"
        reference = _image_reference(task, where)
        path = _find(folder, reference)
        annotations = [a for a in task.get("annotations", []) if not a.get("was_cancelled")]
        results = annotations[0].get("result", []) if annotations else []
        if not annotations:
            unannotated.append(reference)
        elif path is None:
            missing.append(reference)
        for result in results:
            if result.get("type") != "brushlabels":
                raise DatasetError(
                    f"{where}: a {result.get('type')} result; only brush annotations "
                    "(brushlabels) are imported"
                )
        chosen[where] = (path, results)
    refuse_missing_images(export, missing, folder)
    refuse_unannotated(export, unannotated, keep_unannotated)
    labels = {
        label
        for _, results in chosen.values()
        for r in results
        for label in r["value"]["brushlabels"]
    }
    names = class_list(export, labels, classes)
    index = {name: position for position, name in enumerate(names)}
    samples = [
        _sample(path, results, index, where)
        for where, (path, results) in chosen.items()
        if path is not None
    ]
    return Export("Label Studio", names, unique_names(export, samples))


def _load(export: Path) -> list[dict]:
    try:
        tasks = json.loads(export.read_text())
    except (OSError, ValueError) as error:
        raise DatasetError(f"{export}: not a readable Label Studio JSON export ({error})") from None
    if not isinstance(tasks, list) or not all(isinstance(task, dict) for task in tasks):
        raise DatasetError(
            f"{export}: not a list of tasks; export the project as JSON (not JSON-MIN)"
        )
    return tasks


def _image_reference(task: dict, where: str) -> str:
    data = task.get("data", {})
    reference = data.get("image")
    if reference is None:
        texts = [value for value in data.values() if isinstance(value, str)]
        if len(texts) != 1:
            raise DatasetError(f"{where}: no data.image naming the task's image")
        reference = texts[0]
    url = urlparse(reference)
    # local storage: /data/local-files/?d=<path below the storage root>
    local = parse_qs(url.query).get("d")
    return unquote(Path(local[0] if local else url.path).name)


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (name, UPLOAD_PREFIX.sub("", name)):
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def _sample(path: Path, results: list[dict], index: dict[str, int], where: str) -> Sample:
    size = image_size(path)
    for result in results:
        stated = (result["original_height"], result["original_width"])
        if stated != size:
            raise DatasetError(
                f"{path}: the image is {size[1]}x{size[0]} but {where} says "
                f"{stated[1]}x{stated[0]}; import the export with the images it was made on"
            )

    def draw() -> np.ndarray:
        mask = np.zeros(size, dtype=np.uint8)
        for result in results:
            pixels = stroke(result, where)
            for label in result["value"]["brushlabels"]:
                mask[pixels] = index[label]
        return mask

    return Sample(UPLOAD_PREFIX.sub("", path.stem), path, size, draw)
