"""LabelMe JSON import on a hand-made folder: polygons, rectangles and circles drawn as
LabelMe documents them (pixel coordinates, edges included), checked pixel by pixel."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.data import DatasetError
from seglab.data.importers import read_labelme

SIZE = (20, 20)


def image_bytes(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size[1], size[0]), (40, 80, 120)).save(buffer, format="PNG")
    return buffer.getvalue()


def shape(label: str, kind: str, *points: tuple[float, float]) -> dict:
    return {"label": label, "points": [list(p) for p in points], "shape_type": kind, "flags": {}}


def write(folder: Path, stem: str, shapes: list[dict], image: bool = True) -> None:
    document = {
        "version": "5.4.1",
        "flags": {},
        "shapes": shapes,
        "imagePath": f"{stem}.png",
        "imageData": None,
        "imageHeight": SIZE[0],
        "imageWidth": SIZE[1],
    }
    if image:
        (folder / f"{stem}.png").write_bytes(image_bytes(SIZE))
    (folder / f"{stem}.json").write_text(json.dumps(document))


def labelme_export(folder: Path) -> Path:
    """one.png: a cat rectangle (corners (2,2), (6,5): 5x4 px), half covered by a later dog
    square polygon (x 4..8, y 2..5), a dog polygon square (x, y 10..14: 25 px) and a cat circle
    of radius 2 at (5,14); two.png: no shapes at all."""
    write(
        folder,
        "one",
        [
            shape("cat", "rectangle", (6, 5), (2, 2)),
            shape("dog", "polygon", (4, 2), (8, 2), (8, 5), (4, 5)),
            shape("dog", "polygon", (10, 10), (14, 10), (14, 14), (10, 14)),
            shape("cat", "circle", (5, 14), (5, 16)),
        ],
    )
    write(folder, "two", [])
    return folder


#: LabelMe's circle of radius 2 (PIL's ellipse in the box centre +- radius, rim included)
DISC = np.array(
    [
        [0, 1, 1, 1, 0],
        [1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1],
        [0, 1, 1, 1, 0],
    ],
    dtype=bool,
)


def test_shapes_drawn_later_over_earlier(tmp_path: Path) -> None:
    export = read_labelme(labelme_export(tmp_path), None, False)
    assert export.classes == ("background", "cat", "dog")
    drawn = {sample.name: sample.draw() for sample in export.samples}
    expected = np.zeros(SIZE, dtype=np.uint8)
    expected[2:6, 2:7] = 1
    expected[2:6, 4:9] = 2
    expected[10:15, 10:15] = 2
    expected[12:17, 3:8][DISC] = 1
    np.testing.assert_array_equal(drawn["one"], expected)
    assert (drawn["one"] == 1).sum() == 8 + 21 and (drawn["one"] == 2).sum() == 20 + 25
    np.testing.assert_array_equal(drawn["two"], np.zeros(SIZE, dtype=np.uint8))


def test_classes_given_keep_their_order(tmp_path: Path) -> None:
    export = read_labelme(labelme_export(tmp_path), ["dog", "cat"], False)
    assert export.classes == ("background", "dog", "cat")
    one = next(sample for sample in export.samples if sample.name == "one").draw()
    assert (one == 2).sum() == 8 + 21
    with pytest.raises(DatasetError, match=r"label\(s\) cat are not in --classes; add them"):
        read_labelme(tmp_path, ["dog"], False)


def test_an_embedded_image_stands_in_for_a_missing_file(tmp_path: Path) -> None:
    write(tmp_path, "embedded", [shape("cat", "rectangle", (0, 0), (1, 1))], image=False)
    document = json.loads((tmp_path / "embedded.json").read_text())
    document["imageData"] = base64.b64encode(image_bytes(SIZE)).decode()
    (tmp_path / "embedded.json").write_text(json.dumps(document))
    (sample,) = read_labelme(tmp_path, None, False).samples
    assert sample.image_data == image_bytes(SIZE)
    assert (sample.draw() == 1).sum() == 4


def test_a_json_without_its_image_is_refused_by_name(tmp_path: Path) -> None:
    labelme_export(tmp_path)
    (tmp_path / "two.png").unlink()
    with pytest.raises(DatasetError, match=r"not found in .*two\.png; put the images there"):
        read_labelme(tmp_path, None, False)


def test_an_image_without_a_json_is_refused_unless_kept(tmp_path: Path) -> None:
    labelme_export(tmp_path)
    (tmp_path / "three.png").write_bytes(image_bytes((4, 6)))
    with pytest.raises(DatasetError, match=r"have no annotation: three\.png.*--keep-unannotated"):
        read_labelme(tmp_path, None, False)
    kept = {s.name: s for s in read_labelme(tmp_path, None, True).samples}
    np.testing.assert_array_equal(kept["three"].draw(), np.zeros((4, 6), dtype=np.uint8))


def test_a_line_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "one", [shape("cat", "line", (0, 0), (5, 5))])
    with pytest.raises(DatasetError, match=r"one\.json: shape 'cat' is a line.*redraw it"):
        read_labelme(tmp_path, None, False)
