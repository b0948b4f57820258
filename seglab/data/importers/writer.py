"""Write an `Export` as seglab's flat folder layout, whole or not at all.

``<out>/images/<name><ext>`` (the image files as the export has them, byte for byte),
``<out>/masks/<name>.png`` (class indices, 255 void) and ``<out>/data/imported.yaml``, a data
config on conf/data/folder.yaml that validates on a share of the images. Everything goes to a
hidden partial folder beside ``<out>`` that is renamed onto it at the end, so an import that
fails (a refused mask, a full disk, Ctrl-C) leaves no ``<out>`` that looks like a dataset.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from seglab.data.importers.dataset import Export, Sample
from seglab.data.metadata import DatasetError

#: the data config's option name under ``<out>/data/``
CONFIG_NAME = "imported"


def refuse_existing(out: Path) -> None:
    """An import writes a new folder only: it never mixes its files with another's."""
    if out.exists():
        raise DatasetError(
            f"{out} already exists; an import writes a new folder only: name another output "
            "folder or remove this one"
        )


def write_export(export: Export, out: Path, val_fraction: float, command: str) -> Path:
    """Write ``export`` into the new folder ``out``; returns its data config file.

    ``command`` is the import's own command line, recorded in the config's header.
    """
    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.{secrets.token_hex(6)}.partial")
    try:
        (partial / "images").mkdir(parents=True)
        (partial / "masks").mkdir()
        for sample in export.samples:
            write_sample(sample, partial)
        (partial / "data").mkdir()
        config = partial / "data" / f"{CONFIG_NAME}.yaml"
        config.write_text(data_config(export, out, val_fraction, command))
        # checked last, just before the rename: a folder made meanwhile is never replaced
        refuse_existing(out)
        os.rename(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return out / "data" / f"{CONFIG_NAME}.yaml"


def write_sample(sample: Sample, root: Path) -> None:
    mask = sample.draw()
    if mask.shape != sample.size or mask.dtype != np.uint8:
        raise DatasetError(
            f"{sample.image}: its mask was drawn {mask.shape} {mask.dtype}, not {sample.size} "
            "uint8; the export is inconsistent"
        )
    image = root / "images" / f"{sample.name}{sample.image.suffix.lower()}"
    if sample.image_data is not None:
        image.write_bytes(sample.image_data)
    else:
        shutil.copyfile(sample.image, image)
    Image.fromarray(mask, mode="L").save(root / "masks" / f"{sample.name}.png")


def train_command(out: Path) -> str:
    """The command that trains on an imported folder ``out``."""
    return f"seglab-train --config-dir {shlex.quote(str(out))} data={CONFIG_NAME}"


def data_config(export: Export, out: Path, val_fraction: float, command: str) -> str:
    classes = ", ".join(_quoted(name) for name in export.classes)
    return (
        f"# {export.tool} export imported by: {command}\n"
        f"# {len(export.samples)} images; masks hold class indices, 255 is void\n"
        f"# train: {train_command(out)}\n"
        "defaults:\n"
        "  - folder\n"
        "  - _self_\n"
        f"root: {_quoted(str(out))}\n"
        f"classes: [{classes}]\n"
        "splits:\n"
        f"  val_fraction: {val_fraction}\n"
    )


def _quoted(value: str) -> str:
    """``value`` as a YAML single-quoted scalar (a class named ``yes`` or ``1`` stays text)."""
    return "'" + value.replace("'", "''") + "'"
