"""CamVid val mIoU against the labels a run learns from: a labelled share of the train split
under each training method, and sparse labels, each one ``experiment=camvid_cpu`` run.

    python scripts/studies/label_efficiency.py [--rows 1 2 ...] [--max-time DD:HH:MM:SS]
        [--out docs/label_efficiency.md] [--runs <folder>] [override ...]

Every row trains ``seglab-train experiment=camvid_cpu <its overrides> <override ...>`` in a
fresh process, one after the other (the budget is wall-clock time: run on a quiet machine),
reads the run's best ``val/mIoU`` back from its TensorBoard events, and writes a Markdown table
with one row per run and the command that reproduces it. ``--max-time`` replaces the recipe's
10-minute ``trainer.max_time`` (a trial of the script; its numbers are not the recipe's).
Extra overrides (``data.root=<camvid>``) go to every run and into the commands shown.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

from seglab.runs.directories import read_scalars
from seglab.runs.environment import cpu_description

#: What every row is a variant of.
EXPERIMENT = "experiment=camvid_cpu"
#: The semi-supervised methods' settings in the 10-minute budget: 4 unlabelled frames beside
#: the 8 labelled ones per step (as experiment=camvid_cpu_semi), and Mean Teacher's ramp-up
#: over the first few hundred of its steps instead of 1000.
FIXMATCH = ["method=fixmatch", "method.unlabeled_batch_size=4"]
MEAN_TEACHER = ["method=mean_teacher", "method.unlabeled_batch_size=4", "method.rampup=300"]


class Row(NamedTuple):
    """One run of the grid: what labels it has, how it learns, and its overrides."""

    labels: str
    method: str
    overrides: list[str]


def _fraction_rows(share: str, fraction: float) -> list[Row]:
    labelled = [f"data.few_labels.labeled_fraction={fraction}"]
    return [
        Row(f"{share} of the train split", "supervised", labelled),
        Row(f"{share} of the train split", "fixmatch", labelled + FIXMATCH),
        Row(f"{share} of the train split", "mean_teacher", labelled + MEAN_TEACHER),
    ]


#: Full masks on every train frame are the third share of the grid and the first kind of
#: weak labels at once; a semi-supervised method needs unlabelled frames, so it has no row there.
ROWS = [
    *_fraction_rows("1/8", 0.125),
    *_fraction_rows("1/4", 0.25),
    Row("all of the train split, full masks", "supervised", []),
    Row(
        "all, scribbles (a line per region)",
        "supervised",
        ["data.few_labels.sparse_labels=scribbles"],
    ),
    Row("all, points (a pixel per region)", "supervised", ["data.few_labels.sparse_labels=points"]),
]


def command(row: Row, extra: list[str]) -> list[str]:
    """The seglab-train arguments of ``row``."""
    return [EXPERIMENT, *row.overrides, *extra]


def best_val_miou(run_dir: Path) -> str | None:
    """The run's best ``val/mIoU``, the step it was reached at and the steps the run made (a
    run whose data loading is slow makes fewer); None if it never validated."""
    points = read_scalars(run_dir).get("val/mIoU", [])
    if not points:
        return None
    step, value = max(points, key=lambda point: point[1])
    return f"{value:.3f} (step {step} of {points[-1][0]})"


def train(row: Row, extra: list[str], output_root: Path) -> tuple[Path | None, str | None]:
    """Run ``row`` below ``output_root``; its run directory, or None and why it failed."""
    args = [sys.executable, "-m", "seglab.cli.train", *command(row, extra)]
    args.append(f"paths.output_root={output_root}")
    print("+", shlex.join(args), flush=True)
    result = subprocess.run(args, stderr=subprocess.PIPE, text=True)
    runs = sorted((output_root / "train").glob("*")) if (output_root / "train").is_dir() else []
    if result.returncode != 0 or len(runs) != 1:
        lines = result.stderr.strip().splitlines()
        last = lines[-1].replace("|", "/") if lines else "no output"
        return None, f"exit code {result.returncode}: {last}"
    return runs[0], None


def table(rows: list[Row], results: list[str], extra: list[str]) -> list[str]:
    """The Markdown table: one line per row with its result cell and its command."""
    lines = ["| labels | method | best val mIoU | command |", "| --- | --- | --- | --- |"]
    for row, result in zip(rows, results, strict=True):
        shown = shlex.join(["seglab-train", *command(row, extra)])
        lines.append(f"| {row.labels} | {row.method} | {result} | `{shown}` |")
    return lines


def document(lines: list[str], max_time: str | None, runs: Path) -> str:
    """The page: what was run, where, and the table."""
    budget = f"`trainer.max_time={max_time}` (a trial)" if max_time else "10 minutes each"
    return "\n".join(
        [
            "# Label efficiency: CamVid val mIoU from few or sparse labels",
            "",
            "```bash",
            "python scripts/studies/label_efficiency.py",
            "```",
            "",
            f"Each row is one run of `{EXPERIMENT}` (ResNet-18 + FPN from scratch, {budget} on",
            "the CPU) with the overrides of its command, the labelled share chosen by",
            "`data.few_labels.labeled_seed` and the sparse labels derived from the full masks",
            "([Learn from few labels](few_labels.md)). The score is the best `val/mIoU` over the",
            "run's validations (every 2.5 minutes and when the budget ends), read from its",
            "TensorBoard events, with the step it was reached at and the steps the run made.",
            "Semi-supervised rows draw 4 unlabelled frames beside the 8 labelled ones per step,",
            "and scribbles are derived from each mask as it is read, so those rows make fewer",
            "steps in the time.",
            "",
            f"Made on {datetime.date.today().isoformat()} on {os.cpu_count()} CPUs of an "
            f"{cpu_description()}; runs in `{runs}`.",
            "",
            *lines,
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="rows: "
        + "; ".join(f"{i} {r.labels}, {r.method}" for i, r in enumerate(ROWS, start=1)),
    )
    parser.add_argument(
        "--rows", type=int, nargs="+", help="row numbers to run (1-based; default all)"
    )
    parser.add_argument(
        "--max-time", help="trainer.max_time of every run, DD:HH:MM:SS (default: the recipe's)"
    )
    parser.add_argument("--out", type=Path, default=Path("docs/label_efficiency.md"))
    parser.add_argument(
        "--runs",
        type=Path,
        help="folder of the runs (default outputs/label_efficiency/<time>)",
    )
    parser.add_argument("overrides", nargs="*", help="more overrides for every run")
    args = parser.parse_args()
    numbers = args.rows or list(range(1, len(ROWS) + 1))
    bad = [number for number in numbers if not 1 <= number <= len(ROWS)]
    if bad:
        parser.error(f"--rows {bad}: rows are numbered 1 to {len(ROWS)}")
    extra = list(args.overrides)
    if args.max_time:
        extra.append(f"trainer.max_time={args.max_time}")
    runs = args.runs or Path(
        "outputs", "label_efficiency", datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    )
    rows = [ROWS[number - 1] for number in numbers]
    results, failed = [], 0
    for number, row in zip(numbers, rows, strict=True):
        run_dir, error = train(row, extra, runs / f"row{number}")
        best = None if run_dir is None else best_val_miou(run_dir)
        if best is None:
            failed += 1
        results.append(best or f"failed ({error or 'no validation logged'})")
        print(f"row {number}: {row.labels}, {row.method}: {results[-1]}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(document(table(rows, results, extra), args.max_time, runs))
    print(f"wrote {args.out}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
