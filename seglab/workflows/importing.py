"""``seglab-data import``: an annotation tool's export into a new seglab dataset folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from seglab.data.importers import (
    Export,
    read_coco,
    read_cvat,
    read_label_studio,
    read_labelme,
    train_command,
    write_export,
)
from seglab.data.importers.writer import refuse_existing
from seglab.data.metadata import DatasetError

__all__ = ["FORMATS", "import_export", "read_export", "train_command"]

#: the export formats, in the order the command's help lists them
FORMATS = ("coco", "labelme", "cvat", "label-studio")


def read_export(
    format: str,
    export: Path,
    images: Path | None = None,
    classes: Sequence[str] | None = None,
    keep_unannotated: bool = False,
) -> Export:
    """``export`` read by the importer of ``format`` (one of `FORMATS`)."""
    if not export.exists():
        raise DatasetError(f"{export} does not exist; give the export's file or folder")
    if format == "coco":
        return read_coco(export, images, keep_unannotated)
    if format == "labelme":
        return read_labelme(export, classes, keep_unannotated)
    if format == "cvat":
        return read_cvat(export, images, keep_unannotated)
    if format == "label-studio":
        return read_label_studio(export, images, classes, keep_unannotated)
    raise DatasetError(f"unknown export format {format!r}; use one of {', '.join(FORMATS)}")


def import_export(
    format: str,
    export: Path,
    out: Path,
    images: Path | None = None,
    classes: Sequence[str] | None = None,
    keep_unannotated: bool = False,
    val_fraction: float = 0.2,
    command: str = "",
) -> tuple[Export, Path]:
    """Read ``export`` and write it into the new folder ``out``; returns what was read and the
    data config written. The output folder is refused first, before any file is read."""
    if not 0 < val_fraction < 1:
        raise DatasetError(f"--val-fraction {val_fraction} must be in (0, 1), e.g. 0.2")
    refuse_existing(out)
    read = read_export(format, export, images, classes, keep_unannotated)
    config = write_export(read, out, val_fraction, command or f"seglab-data import {format}")
    return read, config
