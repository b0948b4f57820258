"""CVAT's "Segmentation mask 1.1" export (the Pascal VOC layout), unzipped.

``labelmap.txt`` lists one ``name:r,g,b:parts:actions`` line per label (``#`` lines are
comments); ``SegmentationClass/<stem>.png`` paints each pixel in its label's colour, the
background (0,0,0) where nothing is; the images are ``JPEGImages/<stem>.<ext>`` when the export
holds them, else in ``--images``. Classes are the labelmap's labels in its order, with the
label of colour (0,0,0) (CVAT's ``background``) as class 0. A colour the labelmap does not
list is refused, naming the file: it is a mask of another task or a lossy copy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from seglab.data.importers.dataset import (
    Export,
    Sample,
    check_size,
    image_size,
    listed,
    refuse_missing_images,
    refuse_unannotated,
    unique_names,
)
from seglab.data.importers.labelme import IMAGE_EXTENSIONS
from seglab.data.metadata import DatasetError

BLACK = (0, 0, 0)


def read_labelmap(path: Path) -> dict[tuple[int, int, int], str]:
    """Colour -> label of a ``labelmap.txt``, in its order, the background's colour first."""
    if not path.is_file():
        raise DatasetError(
            f"{path} not found: a CVAT 'Segmentation mask 1.1' export holds it; "
            "point at the unzipped export folder"
        )
    colours: dict[tuple[int, int, int], str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, rest = line.partition(":")
        try:
            colour = tuple(int(value) for value in rest.split(":", 1)[0].split(","))
        except ValueError:
            colour = ()
        if len(colour) != 3 or not all(0 <= value <= 255 for value in colour):
            raise DatasetError(f"{path}:{number}: expected 'name:r,g,b::', got {line!r}")
        if colour in colours:
            raise DatasetError(
                f"{path}:{number}: {name} has the colour {colour} of {colours[colour]}; "
                "give each label its own colour"
            )
        colours[colour] = name
    if BLACK not in colours:
        colours = {BLACK: "background", **colours}
    return {BLACK: colours[BLACK], **{c: n for c, n in colours.items() if c != BLACK}}


def read_cvat(export: Path, images: Path | None, keep_unannotated: bool) -> Export:
    """The unzipped CVAT export folder ``export``."""
    colours = read_labelmap(export / "labelmap.txt")
    mask_folder = export / "SegmentationClass"
    folder = images or export / "JPEGImages"
    masks = {path.stem: path for path in sorted(mask_folder.glob("*.png"))}
    if not masks:
        raise DatasetError(f"{mask_folder}: no PNG masks; export as 'Segmentation mask 1.1'")
    found = {
        path.stem: path
        for path in (sorted(folder.iterdir()) if folder.is_dir() else [])
        if path.suffix.lower() in IMAGE_EXTENSIONS
    }
    refuse_missing_images(
        mask_folder, [masks[stem].name for stem in masks if stem not in found], folder
    )
    unannotated = [found[stem].name for stem in found if stem not in masks]
    refuse_unannotated(folder, unannotated, keep_unannotated)
    samples = [
        _sample(found[stem], masks.get(stem), colours)
        for stem in sorted(found)
        if stem in masks or keep_unannotated
    ]
    return Export("CVAT", tuple(colours.values()), unique_names(export, samples))


def _sample(image: Path, mask: Path | None, colours: dict) -> Sample:
    if mask is None:
        size = image_size(image)
        return Sample(image.stem, image, size, lambda: np.zeros(size, dtype=np.uint8))
    with Image.open(mask) as opened:
        stated = (opened.height, opened.width)
    size = check_size(image, stated, str(mask))
    return Sample(image.stem, image, size, lambda: colour_mask(mask, colours))


def colour_mask(path: Path, colours: dict[tuple[int, int, int], str]) -> np.ndarray:
    """The class indices of a colour mask: each colour's position in ``colours``."""
    with Image.open(path) as opened:
        rgb = np.asarray(opened.convert("RGB"), dtype=np.int32)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    keys = np.array([(r << 16) | (g << 8) | b for r, g, b in colours], dtype=np.int32)
    order = np.argsort(keys)
    position = np.searchsorted(keys[order], packed)
    position = np.minimum(position, len(keys) - 1)
    known = keys[order][position] == packed
    if not known.all():
        unknown = np.unique(packed[~known])
        shown = [f"({v >> 16},{(v >> 8) & 255},{v & 255})" for v in unknown.tolist()]
        raise DatasetError(
            f"{path}: colour(s) {listed(shown)} are not in labelmap.txt; "
            "export the masks and the labelmap of one task, as PNG"
        )
    return order[position].astype(np.uint8)
