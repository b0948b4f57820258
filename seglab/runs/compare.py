"""The table of ``seglab-compare``: one row per run of a sweep (or of all of ``outputs/``),
side by side.

Columns are the config values that differ between the runs and the results read back from
each run's TensorBoard event files, so the table says which change gave which number without
opening TensorBoard.

The folds of a cross-validation (runs with ``data.splits.folds`` set whose configs differ only in
``data.splits.fold``) make one row: the mean of each result over the folds, the sample standard
deviation (``ddof=1``, the n - 1 convention; empty for a single fold) of each metric in a
``std`` column beside it, and the number of folds.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seglab.errors import SeglabError
from seglab.runs.records import (
    MISSING,
    Run,
    differing_keys,
    find_runs,
    format_value,
    is_headline_test,
    read_run,
)
from seglab.runs.spread import spread
from seglab.visualization.tables import markdown_table, text_table

DICE = "val/mDice"
LOSS = "val/loss"
# the keys of a cross-validation run (conf/data): how many folds, and which one it validated on
FOLDS = "data.splits.folds"
FOLD = "data.splits.fold"


class CompareError(SeglabError):
    """A problem with the command line or the runs found, reported as one line."""


def default_mode(metric: str) -> str:
    """Losses are minimised; IoU, Dice, accuracy and the like are maximised."""
    return "min" if "loss" in metric.lower() else "max"


def best(points: Sequence[tuple[int, float]], mode: str) -> float | None:
    """The best logged value; NaN (a diverged epoch) never counts as best."""
    values = [value for _, value in points if not math.isnan(value)]
    if not values:
        return None
    return max(values) if mode == "max" else min(values)


def validation_points(run: Run) -> int:
    """How many times the run validated: distinct steps at which it logged a ``val/`` value."""
    return len(
        {
            step
            for tag, points in run.scalars.items()
            if tag.startswith("val/")
            for step, _ in points
        }
    )


@dataclass
class Table:
    """Header and rows with raw values, so each format chooses its own precision."""

    header: list[str]
    rows: list[list[Any]]
    # columns holding numbers (right-aligned) -> decimals shown in the table and markdown
    decimals: dict[int, int]


def fold_groups(runs: Sequence[Run]) -> list[list[Run]]:
    """The runs in rows: the folds of one cross-validation together, any other run alone.

    Folds belong together when their configs, ``data.splits.fold`` aside, are the same; a run of
    another fold count or learning rate is another cross-validation.
    """
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        if run.config.get(FOLDS) is None:
            key = ("run", run.name)
        else:
            config = {name: value for name, value in run.config.items() if name != FOLD}
            key = ("folds", json.dumps(config, sort_keys=True, default=str))
        groups.setdefault(key, []).append(run)
    return list(groups.values())


def run_results(run: Run, metric: str, mode: str) -> list[float | None]:
    """The run's best metric (and best mDice), final val loss, epochs and wall time."""
    values: list[float | None] = [best(run.scalars.get(metric, []), mode)]
    if metric != DICE:
        values.append(best(run.scalars.get(DICE, []), "max"))
    loss = run.scalars.get(LOSS)
    return [*values, loss[-1][1] if loss else None, validation_points(run), run.wall_time]


def mean_and_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof=1) of the values present.

    A single value is its own mean, kept as it is (an epoch count stays an integer), and has no
    standard deviation.
    """
    present = [value for value in values if value is not None]
    if len(present) < 2:
        return (present[0] if present else None), None
    summary = spread(present)
    return summary.mean, summary.std


def build_table(runs: Sequence[Run], metric: str, mode: str) -> Table:
    """One row per run, or per cross-validation (`fold_groups`), sorted by the metric's best
    value (its mean over the folds); rows without it come last."""
    cross_validated = any(run.config.get(FOLDS) is not None for run in runs)
    keys = [key for key in differing_keys(runs) if not (cross_validated and key == FOLD)]
    metrics = [f"best {metric}"]
    if metric != DICE:
        metrics.append(f"best {DICE}")
    metrics.append(f"final {LOSS}")
    results = [*metrics, "epochs", "wall time [s]"]
    if cross_validated:
        spread = [[name, f"{name} std"] if name in metrics else [name] for name in results]
        header = ["folds", *(label for labels in spread for label in labels)]
    else:
        header = results
    # only a search with a pruner has runs it stopped early; the column says which and when
    pruning = any(run.pruned_after is not None for run in runs)
    scored: list[tuple[float | None, list[Any]]] = []
    for group in fold_groups(runs):
        columns = zip(*(run_results(run, metric, mode) for run in group), strict=True)
        values: list[Any] = [len(group)] if cross_validated else []
        for name, column in zip(results, columns, strict=True):
            mean, std = mean_and_std(column)
            values += [mean, std] if cross_validated and name in metrics else [mean]
        config = [format_value(group[0].config.get(key, MISSING)) for key in keys]
        if pruning:
            stopped = [f"after epoch {r.pruned_after}" for r in group if r.pruned_after is not None]
            values.append("; ".join(stopped) or None)
        score = values[1 if cross_validated else 0]
        scored.append((score, [*config, *values, "; ".join(run.name for run in group)]))
    sign = -1 if mode == "max" else 1
    scored.sort(key=lambda item: (item[0] is None, sign * item[0] if item[0] is not None else 0))
    decimals = {
        len(keys) + i: 1 if name in ("wall time [s]", "epochs") else 4
        for i, name in enumerate(header)
    }
    return Table(
        header=[*keys, *header, *(["pruned"] if pruning else []), "run"],
        rows=[row for _, row in scored],
        decimals=decimals,
    )


def _cell(value: Any, digits: int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if digits is None else f"{value:.{digits}f}"
    return str(value)


def render(table: Table, fmt: str) -> str:
    """The table as CSV (full precision), a GitHub markdown table or aligned plain text."""
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(table.header)
        writer.writerows([_cell(value, None) for value in row] for row in table.rows)
        return buffer.getvalue().rstrip("\n")
    cells = [
        [_cell(value, table.decimals.get(i, 4)) for i, value in enumerate(row)]
        for row in table.rows
    ]
    align = "".join(">" if i in table.decimals else "<" for i in range(len(table.header)))
    if fmt == "markdown":
        return markdown_table(table.header, cells, align)
    return text_table(table.header, cells, align)


def compare(root: Path, metric: str, mode: str | None) -> tuple[list[Run], Table]:
    """Read every run below ``root`` and tabulate them; errors say what to pass instead."""
    if not root.exists():
        raise CompareError(
            f"{root} does not exist; give a sweep directory (outputs/train/multirun/<time>) "
            "or an outputs directory"
        )
    run_dirs = find_runs(root)
    if not run_dirs:
        raise CompareError(
            f"no run directory below {root} (one holding .hydra/config.yaml and event files); "
            "give a sweep directory (outputs/train/multirun/<time>) or an outputs directory"
        )
    runs = [read_run(run_dir, root) for run_dir in run_dirs]
    if not any(run.scalars.get(metric) for run in runs):
        logged = sorted({tag for run in runs for tag in run.scalars})
        raise CompareError(
            f"no run below {root} logged {metric}; choose --metric from: "
            f"{', '.join(logged) or 'none (no run logged any scalar)'}"
        )
    return runs, build_table(runs, metric, mode or default_mode(metric))


def run_details(run: Run, metric: str, mode: str) -> list[str]:
    """What one run's table row leaves out: when its best ``metric`` came (epoch and step, as
    TensorBoard shows it), its last value, its test scores and the metric at each validation,
    so that a run is checked against a target from its events alone."""
    points = run.scalars.get(metric, [])
    lines = []
    score = best(points, mode)
    if score is not None:
        step = next(step for step, value in points if value == score)
        epoch = dict(run.scalars.get("epoch", [])).get(step)
        at = f"epoch {int(epoch)}, step {step}" if epoch is not None else f"step {step}"
        lines.append(f"best:  {metric} {score:.4f} at {at}; last {points[-1][1]:.4f}")
    tests = {
        tag: values[-1][1] for tag, values in sorted(run.scalars.items()) if is_headline_test(tag)
    }
    if tests:
        lines.append("test:  " + ", ".join(f"{tag} {value:.4f}" for tag, value in tests.items()))
    if points:
        lines.append(f"{metric} per validation: " + " ".join(f"{value:.4f}" for _, value in points))
    return lines
