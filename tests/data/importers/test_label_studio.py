"""Label Studio brush import: its RLE decoded and checked against masks encoded here by hand,
and a hand-made JSON export checked pixel by pixel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.data import DatasetError
from seglab.data.importers import read_label_studio
from seglab.data.importers.label_studio import decode_rle

#: run-length field sizes the encoder below writes (each stored less one, in 4 bits)
SIZES = (3, 4, 8, 16)


def bits_to_bytes(bits: str) -> list[int]:
    bits += "0" * (-len(bits) % 8)
    return [int(bits[i : i + 8], 2) for i in range(0, len(bits), 8)]


def field(value: int, width: int) -> str:
    return format(value, f"0{width}b")


def chunk_header(repeated: bool, length: int) -> str:
    choice = next(i for i, size in enumerate(SIZES) if length - 1 < 2**size)
    return ("1" if repeated else "0") + field(choice, 2) + field(length - 1, SIZES[choice])


def encode(values: np.ndarray) -> list[int]:
    """Label Studio's brush RLE of ``values`` (uint8): runs of two or more as repeat chunks,
    the values between them as literal chunks."""
    bits = [field(len(values), 32), field(8 - 1, 5), *(field(size - 1, 4) for size in SIZES)]
    flat = values.tolist()
    literal: list[int] = []
    start = 0
    while start < len(flat):
        end = start
        while end < len(flat) and flat[end] == flat[start] and end - start < 2 ** SIZES[-1]:
            end += 1
        if end - start >= 2:
            if literal:
                bits += [chunk_header(False, len(literal)), *(field(v, 8) for v in literal)]
                literal = []
            bits += [chunk_header(True, end - start), field(flat[start], 8)]
        else:
            literal.append(flat[start])
        start = end
    if literal:
        bits += [chunk_header(False, len(literal)), *(field(v, 8) for v in literal)]
    return bits_to_bytes("".join(bits))


def test_decodes_a_stream_written_bit_by_bit() -> None:
    """[9, 9, 9]: count 3, word size 8, every field 2 bits, one repeat chunk of length 3."""
    stream = "0" * 30 + "11" + "00111" + "0001" * 4 + "1" + "00" + "10" + "00001001"
    np.testing.assert_array_equal(decode_rle(bits_to_bytes(stream)), [9, 9, 9])


def test_decodes_literal_and_repeated_runs() -> None:
    """Short and long literal chunks, and repeats longer than the longest length field."""
    distinct = np.arange(1, 200, dtype=np.uint8)  # a literal chunk of 199 words
    values = np.concatenate(
        [np.zeros(300), [1, 2, 3], np.full(20, 255), [4], distinct, np.zeros(70000)]
    ).astype(np.uint8)
    np.testing.assert_array_equal(decode_rle(encode(values)), values)


def brush(mask: np.ndarray, label: str) -> dict:
    """A brush result whose stroke is ``mask``'s alpha (red where it is painted)."""
    height, width = mask.shape
    rgba = np.zeros((height, width, 4), dtype=np.uint8)
    rgba[..., 0] = np.where(mask > 0, 255, 0)
    rgba[..., 3] = mask
    return {
        "id": label,
        "type": "brushlabels",
        "from_name": "tag",
        "to_name": "image",
        "original_height": height,
        "original_width": width,
        "image_rotation": 0,
        "value": {"format": "rle", "rle": encode(rgba.reshape(-1)), "brushlabels": [label]},
    }


def box(top: int, bottom: int, left: int, right: int, alpha: int = 255) -> np.ndarray:
    mask = np.zeros((6, 8), dtype=np.uint8)
    mask[top:bottom, left:right] = alpha
    return mask


def task(number: int, image: str, *results: dict, cancelled: bool = False) -> dict:
    annotation = {"id": number * 10, "was_cancelled": cancelled, "result": list(results)}
    return {"id": number, "data": {"image": image}, "annotations": [annotation]}


def label_studio_export(root: Path, tasks: list[dict] | None = None) -> Path:
    """cells.png (uploaded, so named with Label Studio's prefix in the export): a cell stroke
    (rows 1..3, cols 2..5: 12 px, with one faint pixel of alpha 100 beside it) under a later
    nucleus stroke (rows 2..3, cols 3..4: 4 px); other.png: a nucleus stroke of 2 px."""
    for name in ("cells.png", "other.png"):
        Image.new("RGB", (8, 6), (10, 20, 30)).save(root / name)
    cell = box(1, 4, 2, 6)
    cell[5, 7] = 100
    nucleus = brush(box(2, 4, 3, 5), "nucleus")
    tasks = tasks or [
        task(1, "/data/upload/4/0a1b2c3d-cells.png", brush(cell, "cell"), nucleus),
        task(2, "/data/local-files/?d=images/other.png", brush(box(0, 1, 0, 2), "nucleus")),
    ]
    path = root / "export.json"
    path.write_text(json.dumps(tasks))
    return path


def test_brush_strokes_drawn_later_over_earlier(tmp_path: Path) -> None:
    export = read_label_studio(label_studio_export(tmp_path), None, None, False)
    assert export.classes == ("background", "cell", "nucleus")
    drawn = {sample.name: sample.draw() for sample in export.samples}
    expected = np.zeros((6, 8), dtype=np.uint8)
    expected[1:4, 2:6] = 1
    expected[2:4, 3:5] = 2
    np.testing.assert_array_equal(drawn["cells"], expected)
    assert (drawn["cells"] == 1).sum() == 8 and (drawn["other"] == 2).sum() == 2


def test_a_task_whose_image_is_not_there_is_refused_by_name(tmp_path: Path) -> None:
    path = label_studio_export(tmp_path)
    (tmp_path / "other.png").unlink()
    with pytest.raises(DatasetError, match=r"not found in .*: other\.png; .*--images"):
        read_label_studio(path, None, None, False)


def test_a_cancelled_task_is_unannotated(tmp_path: Path) -> None:
    tasks = [
        task(1, "cells.png", brush(box(1, 4, 2, 6), "cell")),
        task(2, "other.png", brush(box(0, 1, 0, 2), "cell"), cancelled=True),
    ]
    path = label_studio_export(tmp_path, tasks)
    with pytest.raises(DatasetError, match=r"have no annotation: other\.png.*--keep-unannotated"):
        read_label_studio(path, None, None, False)
    kept = {s.name: s.draw() for s in read_label_studio(path, None, None, True).samples}
    np.testing.assert_array_equal(kept["other"], np.zeros((6, 8), dtype=np.uint8))


def test_a_result_of_another_kind_is_refused(tmp_path: Path) -> None:
    polygon = {"type": "polygonlabels", "value": {"points": [], "polygonlabels": ["cell"]}}
    path = label_studio_export(tmp_path, [task(1, "cells.png", polygon)])
    with pytest.raises(DatasetError, match=r"task 1: a polygonlabels result; only brush"):
        read_label_studio(path, None, None, False)


def test_an_rle_of_another_size_is_refused(tmp_path: Path) -> None:
    result = brush(box(1, 4, 2, 6), "cell")
    result["value"]["rle"] = encode(np.zeros(6 * 8 * 4 - 1, dtype=np.uint8))
    path = label_studio_export(tmp_path, [task(1, "cells.png", result)])
    (sample,) = read_label_studio(path, None, None, False).samples
    with pytest.raises(DatasetError, match=r"task 1: its brush RLE holds 191 values, not 6x8x4"):
        sample.draw()
