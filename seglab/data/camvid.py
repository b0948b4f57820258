"""CamVid road scenes (11 classes, void 11) in the SegNet layout.

``<root>/{train,val,test}/`` hold the frames and ``<root>/{train,val,test}annot/`` the label
maps (single-channel PNGs of class indices). ``scripts/download_camvid.py`` fetches them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seglab.data.base import DatasetError
from seglab.data.folder import FolderDataModule

CLASSES = (
    "Sky",
    "Building",
    "Pole",
    "Road",
    "Pavement",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
)
VOID = 11
# the colours SegNet draws the classes in
PALETTE = (
    (128, 128, 128),
    (128, 0, 0),
    (192, 192, 128),
    (128, 64, 128),
    (60, 40, 222),
    (128, 128, 0),
    (192, 128, 128),
    (64, 64, 128),
    (64, 0, 128),
    (64, 64, 0),
    (0, 128, 192),
)


def project_root() -> Path | None:
    """The folder holding ``pyproject.toml`` above the ``seglab`` package (editable installs).

    Hydra does not change the working directory, yet a default data path must not depend on
    where a run is launched from; an installed wheel has no project root, hence None.
    """
    candidate = Path(__file__).resolve().parents[2]
    return candidate if (candidate / "pyproject.toml").is_file() else None


def default_root() -> Path | None:
    """``../shared/data/camvid`` relative to the project root, when that folder exists."""
    project = project_root()
    if project is None:
        return None
    root = project.parent / "shared" / "data" / "camvid"
    return root if root.is_dir() else None


class CamVidDataModule(FolderDataModule):
    """CamVid with its class names, colours and void index; every other option as in the base.

    Args:
        root: the dataset folder; None takes `default_root` and fails, naming ``data.root``
            and the download script, when it does not exist.
        **options: any option of `FolderDataModule` (crop, flips, loaders, ...).
    """

    def __init__(
        self,
        root: str | Path | None = None,
        classes: Sequence[str] = CLASSES,
        ignore_index: int = VOID,
        image_dir: str = "{split}",
        mask_dir: str = "{split}annot",
        palette: Sequence[Sequence[int]] | None = PALETTE,
        **options: Any,
    ) -> None:
        if root is None:
            root = default_root()
            if root is None:
                raise DatasetError(
                    "data.root is not set and the default CamVid folder ../shared/data/camvid "
                    "(next to the project) does not exist; run `python scripts/download_camvid.py"
                    " --root <folder>` and set data.root=<folder>"
                )
        super().__init__(
            root=root,
            classes=classes,
            ignore_index=ignore_index,
            image_dir=image_dir,
            mask_dir=mask_dir,
            palette=palette,
            **options,
        )
