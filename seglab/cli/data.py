"""``seglab-data``: what to know about a dataset before training on it, and fetching one.

``seglab-data stats data=<name> [overrides]`` prints each class's pixel count, pixel
frequency and median-frequency weight, and writes them to ``class_stats.json`` in the run
directory (``outputs/data_stats/<time>/``); the weights are those
``loss.class_weights=median_frequency`` trains with. Raw mask values the label map does not
cover are listed too (pixels, masks, a file holding each), where training refuses them.

``seglab-data download camvid [--root <folder>]`` fetches a dataset from its public source in
the layout its data config reads (`seglab.data.download`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from seglab.config.check import check_command_line
from seglab.data.camvid import dataset_home
from seglab.data.download import SOURCES, download, source
from seglab.data.label_map import format_uncovered
from seglab.data.stats import format_statistics
from seglab.errors import reported
from seglab.workflows.mounting import config_dir
from seglab.workflows.statistics import split_statistics

PROG = "seglab-data"
COMMANDS = ("stats", "download")
USAGE = (
    "usage: seglab-data stats data=<name> [split=train|val|test] [overrides]\n"
    "       seglab-data download <dataset> [--root <folder>]"
)


def stats(cfg: DictConfig) -> Path:
    """Compute, print and write the statistics of ``cfg.split``; returns the JSON file."""
    statistics, images, path, uncovered = split_statistics(cfg)
    print(f"{cfg.split} split, {images} images")
    print(format_statistics(statistics))
    if uncovered.pixels:
        print(
            f"{len(uncovered.pixels)} raw value(s) that the label map does not cover, counted "
            "as void above (training refuses them; map each in data.label_map):"
        )
        print(format_uncovered(uncovered))
    print(f"written to {path}")
    return path


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


def main() -> None:
    """Dispatch the subcommand; the remaining arguments of ``stats`` are Hydra's."""
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(USAGE, file=sys.stderr)
        sys.exit(2)
    if sys.argv[1] == "download":
        download_command(sys.argv[2:])
        return
    del sys.argv[1]
    with reported(PROG):
        check_command_line("seglab-data stats", "data_stats", sys.argv[1:], str(config_dir()))
    _stats_app()


if __name__ == "__main__":
    main()
