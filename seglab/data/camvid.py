"""CamVid road scenes in the SegNet layout, found where the project expects them.

``<root>/{train,val,test}/`` hold the frames and ``<root>/{train,val,test}annot/`` the label
maps (single-channel PNGs of class indices). ``seglab-data download camvid`` fetches them.
The class names, colours, void index and layout are written once, in ``conf/data/camvid.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seglab.data.folder import FolderDataModule
from seglab.data.metadata import DatasetError


def project_root() -> Path | None:
    """The folder holding ``pyproject.toml`` above the ``seglab`` package (editable installs).

    Hydra does not change the working directory, yet a default data path must not depend on
    where a run is launched from; an installed wheel has no project root, hence None.
    """
    candidate = Path(__file__).resolve().parents[2]
    return candidate if (candidate / "pyproject.toml").is_file() else None


def dataset_home(name: str) -> Path:
    """Where a dataset is looked for when ``data.root`` is unset: ``../shared/data/<name>``
    beside the project, or ``./data/<name>`` for an installed wheel (which has no project)."""
    project = project_root()
    return (project.parent / "shared" / "data" if project else Path("data").resolve()) / name


def default_root() -> Path | None:
    """``../shared/data/camvid`` relative to the project root, when that folder exists."""
    if project_root() is None:
        return None
    root = dataset_home("camvid")
    return root if root.is_dir() else None


class CamVidDataModule(FolderDataModule):
    """`FolderDataModule` that finds CamVid next to the project when no root is given.

    Everything else, CamVid's classes, palette, void index and folder layout included, comes
    from ``conf/data/camvid.yaml`` (build it with ``seglab-train data=camvid`` or by composing
    that config), so that the values live in one place.

    Args:
        root: the dataset folder; None takes `default_root` and fails, naming ``data.root``
            and the download script, when it does not exist.
        **options: the options of `FolderDataModule` (classes, palette, crop, loaders, ...).
    """

    def __init__(self, root: str | Path | None = None, **options: Any) -> None:
        if root is None:
            root = default_root()
            if root is None:
                raise DatasetError(
                    "data.root is not set and the default CamVid folder ../shared/data/camvid "
                    "(next to the project) does not exist; run `seglab-data download camvid --root "
                    "<folder>` and set data.root=<folder>"
                )
        super().__init__(root=root, **options)
