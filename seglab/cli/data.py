"""``seglab-data``: what to know about a dataset before training on it, and fetching one.

``seglab-data stats data=<name> [overrides]`` prints each class's pixel count, pixel
frequency and median-frequency weight, and writes them to ``class_stats.json`` in the run
directory (``outputs/data_stats/<time>/``); the weights are those
``loss.class_weights=median_frequency`` trains with. It also prints the per-channel mean and
std of the split's images as the ``data.mean=[...] data.std=[...]`` overrides that normalise
with them, written to ``image_stats.json`` beside. Raw mask values the label map does not
cover are listed too (pixels, masks, a file holding each), where training refuses them.

``seglab-data download camvid [--root <folder>]`` fetches a dataset from its public source in
the layout its data config reads (`seglab.data.download`).

``seglab-data import <format> <export> <output>`` writes an annotation tool's export (COCO,
LabelMe, CVAT, Label Studio) into a new dataset folder with a data config to train on it
(`seglab.workflows.importing`).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from seglab.config.check import check_command_line
from seglab.data.camvid import dataset_home
from seglab.data.download import SOURCES, download, source
from seglab.data.label_map import format_uncovered
from seglab.data.metadata import DatasetError
from seglab.data.stats import format_statistics
from seglab.errors import reported
from seglab.workflows.importing import FORMATS, import_export, train_command
from seglab.workflows.mounting import config_dir
from seglab.workflows.statistics import dataset_statistics

PROG = "seglab-data"
COMMANDS = ("stats", "download", "import")
USAGE = (
    "usage: seglab-data stats data=<name> [split=train|val|test] [overrides]\n"
    "       seglab-data download <dataset> [--root <folder>]\n"
    f"       seglab-data import {{{','.join(FORMATS)}}} <export> <output> [options]"
)


def stats(cfg: DictConfig) -> Path:
    """Compute, print and write the statistics of ``cfg.split``; returns the JSON file."""
    found = dataset_statistics(cfg)
    print(f"{cfg.split} split, {found.images} images")
    print(format_statistics(found.classes))
    if found.uncovered.pixels:
        print(
            f"{len(found.uncovered.pixels)} raw value(s) that the label map does not cover, "
            "counted as void above (training refuses them; map each in data.label_map):"
        )
        print(format_uncovered(found.uncovered))
    print(f"written to {found.class_file}")
    print(f"per-channel mean and std of the images: {found.channels.overrides()}")
    print(f"written to {found.channel_file}")
    return found.class_file


@hydra.main(config_path=str(config_dir()), config_name="data_stats", version_base="1.3")
def _stats_app(cfg: DictConfig) -> None:
    with reported(PROG):
        stats(cfg)


def download_command(args: list[str]) -> None:
    """``seglab-data download``: fetch a dataset and say how to train on it."""
    parser = argparse.ArgumentParser(
        prog=f"{PROG} download", description="Fetch a dataset from its public source."
    )
    parser.add_argument("dataset", help=f"one of: {', '.join(SOURCES)}")
    parser.add_argument(
        "--root",
        type=Path,
        help="folder to write the dataset into (default: where its data config looks first, "
        "../shared/data/<dataset> beside the project)",
    )
    parser.add_argument("--url", help="another copy of the archive (https:// or file://)")
    parsed = parser.parse_args(args)
    with reported(PROG):
        data = source(parsed.dataset)
        root = parsed.root or dataset_home(parsed.dataset)
        counts = download(parsed.dataset, root, parsed.url)
    files = ", ".join(f"{folder} {count}" for folder, count in counts.items())
    print(f"{parsed.dataset} written to {root} ({files} files)")
    print(f"next: seglab-train data={data.config} data.root={root}")


def import_command(args: list[str]) -> None:
    """``seglab-data import``: an annotation tool's export into a new dataset folder."""
    parser = argparse.ArgumentParser(
        prog=f"{PROG} import",
        description="Write an annotation tool's export into a new seglab dataset folder.",
    )
    parser.add_argument("format", choices=FORMATS)
    parser.add_argument(
        "export",
        type=Path,
        help="COCO or Label Studio: the JSON file; LabelMe: the folder of JSON files; "
        "CVAT: the unzipped 'Segmentation mask 1.1' folder",
    )
    parser.add_argument("output", type=Path, help="the dataset folder to create (must not exist)")
    parser.add_argument(
        "--images",
        type=Path,
        help="folder of the images (default: the JSON file's folder; CVAT: <export>/JPEGImages)",
    )
    parser.add_argument(
        "--classes",
        help="LabelMe, Label Studio: the labels in class order, comma-separated "
        "(default: the labels found, sorted); class 0 is the background",
    )
    parser.add_argument(
        "--keep-unannotated",
        action="store_true",
        help="import images without annotations as all background (default: refuse them)",
    )
    parser.add_argument(
        "--val-fraction", type=float, default=0.2, help="share of images validated on"
    )
    parsed = parser.parse_args(args)
    with reported(PROG, DatasetError):
        export, config = import_export(
            parsed.format,
            parsed.export,
            parsed.output,
            images=parsed.images,
            classes=parsed.classes.split(",") if parsed.classes else None,
            keep_unannotated=parsed.keep_unannotated,
            val_fraction=parsed.val_fraction,
            command=shlex.join([PROG, "import", *args]),
        )
    out = config.parents[1]
    print(
        f"{len(export.samples)} images of {len(export.classes)} classes "
        f"({', '.join(export.classes)}) written to {out}"
    )
    print(f"data config: {config}")
    print(f"next: {train_command(out)}")


def main() -> None:
    """Dispatch the subcommand; the remaining arguments of ``stats`` are Hydra's."""
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(USAGE, file=sys.stderr)
        sys.exit(2)
    if sys.argv[1] == "download":
        download_command(sys.argv[2:])
        return
    if sys.argv[1] == "import":
        import_command(sys.argv[2:])
        return
    del sys.argv[1]
    with reported(PROG):
        check_command_line("seglab-data stats", "data_stats", sys.argv[1:], str(config_dir()))
    _stats_app()


if __name__ == "__main__":
    main()
