"""Naming a folder's images or masks by sample, and reading the list file of a split.

An image and a mask pair when they have one sample name: the file's path below its folder
without the layout's suffix and extension. With ``image_suffix: _leftImg8bit``, ``recursive:
true`` and ``mask_suffix: _gtFine_labelIds``, ``leftImg8bit/train/aachen/aachen_0_19_leftImg8bit
.png`` and ``gtFine/train/aachen/aachen_0_19_gtFine_labelIds.png`` are both the sample
``aachen/aachen_0_19``. Files of the folder that do not end in the suffix are no sample (a
Cityscapes mask folder also holds ``_gtFine_color.png`` files).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from seglab.data.metadata import DatasetError

# how many unmatched files an error names before it only counts the rest
MAX_LISTED_FILES = 5


def listed(paths: Iterable[Path | str]) -> str:
    """The first few of ``paths``, as errors name them."""
    return str([str(path) for path in list(paths)[:MAX_LISTED_FILES]])


def _path_order(entry: tuple[Path, str]) -> list[str]:
    """Sorts as the paths do (part by part), without building their parts."""
    path, subfolder = entry
    return [*subfolder.split("/"), path.name] if subfolder else [path.name]


@dataclass(frozen=True)
class FilePattern:
    """How the files of one kind (images or masks) are named: ``<name><suffix><extension>``.

    Attributes:
        kind: ``"image"`` or ``"mask"``, which names the key ``data.layout.<kind>_suffix``.
        suffix: what each file's stem ends with after the sample name; ``""`` for none.
        extensions: the file extensions, lower case.
        recursive: whether files in subfolders count, their folders part of the name.
    """

    kind: str
    suffix: str
    extensions: frozenset[str]
    recursive: bool

    def describe(self) -> str:
        """The file name pattern, as errors give it: ``<name>_leftImg8bit.png``."""
        extensions = sorted(self.extensions)
        extension = extensions[0] if len(extensions) == 1 else "{" + ",".join(extensions) + "}"
        return f"<name>{self.suffix}{extension}"

    def name_of(self, path: Path, subfolder: str) -> str | None:
        """The sample name of ``path``, found in ``subfolder`` of the folder (``""`` for the
        folder itself, ``/``-separated), or None where it is no such file."""
        if path.suffix.lower() not in self.extensions or not path.stem.endswith(self.suffix):
            return None
        stem = path.stem[: len(path.stem) - len(self.suffix)]
        if not stem:
            return None
        return f"{subfolder}/{stem}" if subfolder else stem

    def candidates(self, folder: Path) -> list[tuple[Path, str]]:
        """The files of ``folder`` (and of its subfolders when recursive), each with its
        subfolder (`name_of`), hidden files and folders left out, in path order."""
        found: list[tuple[Path, str]] = []
        # linked folders are searched as folders (datasets are often assembled from links)
        for directory, subfolders, names in os.walk(folder, followlinks=True):
            # hidden folders (.git, .ipynb_checkpoints) are not searched
            subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
            base = Path(directory)
            relative = base.relative_to(folder)
            subfolder = "" if relative == Path() else relative.as_posix()
            found.extend((base / name, subfolder) for name in names if not name.startswith("."))
            if not self.recursive:
                break
        return sorted(found, key=_path_order)

    def files(self, folder: Path) -> dict[str, Path]:
        """The files of ``folder`` by sample name, in path order; two files of one name (an
        image saved as .jpg and as .png) are refused."""
        files: dict[str, Path] = {}
        for path, subfolder in self.candidates(folder):
            name = self.name_of(path, subfolder)
            if name is None:
                continue
            if name in files:
                raise DatasetError(
                    f"{path} and {files[name]} are both the {self.kind} of sample {name!r} (they "
                    f"share the stem); keep one file per sample so that each mask has exactly one "
                    "image: delete or move one of them"
                )
            files[name] = path
        return files

    def missing_hint(self, folder: Path) -> str:
        """Why ``folder`` has no file of this pattern where it holds others: the key to set."""
        if not folder.is_dir():
            return ""
        files = self.candidates(folder)
        if not files and not self.recursive and any(p.is_dir() for p in folder.iterdir()):
            return (
                f"; {folder} holds subfolders (one per city or scene?): set "
                "data.layout.recursive=true to search them"
            )
        unsuffixed = [path for path, _ in files if path.suffix.lower() in self.extensions]
        if unsuffixed:
            return (
                f"; {len(unsuffixed)} file(s) such as {unsuffixed[0].name} do not end in "
                f"data.layout.{self.kind}_suffix={self.suffix!r}: set it to what their stems end "
                "with"
            )
        return ""


@dataclass(frozen=True)
class SplitList:
    """A split's list file: one sample name a line (VOC's ``ImageSets/Segmentation/train.txt``),
    or one image path and its mask path a line, relative to the root (a leading ``/`` too).

    Attributes:
        path: the list file.
        names: the sample names, in list order; empty for a list of pairs.
        pairs: the ``(image, mask)`` paths, in list order; empty for a list of names.
    """

    path: Path
    names: tuple[str, ...]
    pairs: tuple[tuple[Path, Path], ...]

    @classmethod
    def read(cls, path: Path, root: Path) -> SplitList:
        """The list ``path``; lines of another form, or a mix of both forms, are refused."""
        names: list[str] = []
        pairs: list[tuple[Path, Path]] = []
        for number, line in enumerate(path.read_text().splitlines(), 1):
            fields = line.split()
            if len(fields) == 1:
                if fields[0] in names:
                    raise DatasetError(
                        f"{path}:{number} lists the sample {fields[0]!r} a second time; list "
                        "each sample once: remove the line"
                    )
                names.append(fields[0])
            elif len(fields) == 2:
                pairs.append((root / fields[0].lstrip("/"), root / fields[1].lstrip("/")))
            elif fields:
                raise DatasetError(
                    f"{path}:{number} has {len(fields)} fields; a split list holds one sample "
                    "name a line, or one image path and its mask path a line"
                )
            if names and pairs:
                raise DatasetError(
                    f"{path}:{number} mixes sample names and image/mask pairs; write one sample "
                    "name a line or one image path and mask path a line throughout"
                )
        return cls(path, tuple(names), tuple(pairs))

    def checked_pairs(self) -> list[tuple[Path, Path]]:
        """The listed pairs, refusing files that do not exist and an image or a mask listed
        twice (a mask with two images, or one sample weighing double)."""
        for kind, index in (("image", 0), ("mask", 1)):
            absent = [pair[index] for pair in self.pairs if not pair[index].is_file()]
            if absent:
                raise DatasetError(
                    f"{self.path} lists {len(absent)} {kind}(s) that do not exist: "
                    f"{listed(absent)}; paths are relative to data.root: fix or remove the lines"
                )
            seen: dict[Path, Path] = {}
            for pair in self.pairs:
                other = pair[1 - index]
                if pair[index] in seen:
                    raise DatasetError(
                        f"{self.path} lists the {kind} {pair[index]} twice, with "
                        f"{seen[pair[index]]} and with {other}; each mask has exactly one image: "
                        "remove one of the lines"
                    )
                seen[pair[index]] = other
        return list(self.pairs)
