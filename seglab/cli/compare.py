"""``seglab-compare``: one row per run of a sweep (or of all of ``outputs/``), side by side,
ranked by a metric, as a table, CSV or markdown, with the metric's curves on request. Given one
run, the table is followed by when its best value came, its test scores and each validation."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from seglab.errors import reported
from seglab.runs.compare import compare, default_mode, render, run_details

PROG = "seglab-compare"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument(
        "path", type=Path, help="a run or sweep directory, or outputs/ (searched below)"
    )
    parser.add_argument("--metric", default="val/mIoU", help="scalar to rank by (val/mIoU)")
    parser.add_argument(
        "--mode",
        choices=("max", "min"),
        help="whether higher or lower is better (default: min if the name has 'loss', else max)",
    )
    parser.add_argument("--format", choices=("table", "csv", "markdown"), default="table")
    parser.add_argument("--plot", type=Path, metavar="OUT.png", help="draw the metric's curves")
    args = parser.parse_args(argv)
    with reported(PROG):
        runs, table = compare(args.path, args.metric, args.mode)
        print(render(table, args.format))
        if len(runs) == 1 and args.format == "table":
            print(
                "\n".join(run_details(runs[0], args.metric, args.mode or default_mode(args.metric)))
            )
        if args.plot is not None:
            from seglab.runs.curves import plot  # matplotlib, only when asked for

            plot(runs, args.metric, args.plot)


if __name__ == "__main__":
    main()
