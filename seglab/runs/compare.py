"""``seglab-compare``: one row per run of a sweep (or of all of ``outputs/``), side by side.

Columns are the config values that differ between the runs and the results read back from
each run's TensorBoard event files, so the table says which change gave which number without
opening TensorBoard.

The folds of a cross-validation (runs with ``data.folds`` set whose configs differ only in
``data.fold``) make one row: the mean of each result over the folds, the sample standard
deviation (``ddof=1``, the n - 1 convention; empty for a single fold) of each metric in a
``std`` column beside it, and the number of folds.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

from seglab.config.keys import is_compared
from seglab.errors import SeglabError, reported
from seglab.runs.directories import (
    PRUNED_FILE,
    event_dir,
    group_choices,
    load_events,
    read_scalars,
    wall_time,
)
from seglab.visualization.tables import markdown_table, text_table

PROG = "seglab-compare"
DICE = "val/mDice"
LOSS = "val/loss"
# the keys of a cross-validation run (conf/data): how many folds, and which one it validated on
FOLDS = "data.folds"
FOLD = "data.fold"
_MISSING = object()
_RESOLVER_CALL = re.compile(r"\$\{[\w.]+:")


class CompareError(SeglabError):
    """A problem with the command line or the runs found, reported as one line."""


@dataclass
class Run:
    """What a run directory says about itself: its config and its logged scalars."""

    name: str
    config: dict[str, Any]
    scalars: dict[str, list[tuple[int, float]]]
    wall_time: float | None
    # the epoch after which an Optuna pruner stopped the run, if it did
    pruned_after: int | None = None


def find_runs(root: Path) -> list[Path]:
    """Run directories at or below ``root``: a ``.hydra/config.yaml`` beside event files.

    Eval runs hold no event files and so are left out; a train run that crashed before logging
    a value keeps its place (with empty results) so that the table shows it failed.
    """
    configs = root.glob("**/.hydra/config.yaml")
    return sorted(config.parent.parent for config in configs if event_dir(config.parent.parent))


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys to leaf values; lists stay whole, as a run sets them whole."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def read_config(run_dir: Path) -> dict[str, Any]:
    """The run's flattened config, without the keys that say where it wrote or how fast it ran
    (`seglab.config.keys.is_compared`)."""
    hydra_dir = run_dir / ".hydra"
    resolved = hydra_dir / "config_resolved.yaml"
    if resolved.is_file():  # what ran
        flat = flatten(OmegaConf.to_container(OmegaConf.load(resolved)))
    else:
        flat = _resolvable_values(hydra_dir / "config.yaml")
    output_dir = flat.get("paths.output_dir")
    config = {
        key: value
        for key, value in flat.items()
        if is_compared(key)
        # values built from the run's own directory (checkpoint dir, logger dir...)
        and not (isinstance(output_dir, str) and isinstance(value, str) and output_dir in value)
    }
    return {**_group_choices(run_dir), **config}


def _group_choices(run_dir: Path) -> dict[str, Any]:
    """The option picked in each config group, but those of where and how Hydra ran it."""
    return {group: choice for group, choice in group_choices(run_dir).items() if is_compared(group)}


def _resolvable_values(path: Path) -> dict[str, Any]:
    """Hydra's unresolved ``config.yaml`` (runs without a resolved copy), flattened.

    Interpolations between config values are resolved, so that they compare with resolved
    runs. A value made by a resolver (``${hydra:...}``, ``${now:...}``, ``${oc.env:...}``),
    directly or through another key, is left out: what it was when the run started cannot be
    known now, and resolving it here would give today's value.
    """
    config = OmegaConf.load(path)
    flat: dict[str, Any] = {}
    for key, raw in flatten(OmegaConf.to_container(config, resolve=False)).items():
        if isinstance(raw, str) and _RESOLVER_CALL.search(raw):
            continue
        try:
            value = OmegaConf.select(config, key, throw_on_missing=True)
            if OmegaConf.is_config(value):
                value = OmegaConf.to_container(value, resolve=True)
        except MissingMandatoryValue:
            value = raw  # "???", as the resolved copy of such a run would keep it
        except (InterpolationResolutionError, ValueError):
            continue
        flat[key] = value
    return flat


def read_run(run_dir: Path, root: Path) -> Run:
    """A run's config and results; the event files are decoded once for both.

    Its name is its directory relative to ``root``, as TensorBoard names it when started with
    ``--logdir root``.
    """
    events = load_events(run_dir)
    return Run(
        name=run_dir.relative_to(root).as_posix(),
        config=read_config(run_dir),
        scalars=read_scalars(events),
        wall_time=wall_time(events),
        pruned_after=_pruned_after(run_dir),
    )


def _pruned_after(run_dir: Path) -> int | None:
    """The epoch in the run's ``pruned.yaml`` (by ``seglab.sweeps.trial_pruning``), if any."""
    record = run_dir / PRUNED_FILE
    return int(OmegaConf.load(record).epoch) if record.is_file() else None


def differing_keys(runs: Sequence[Run]) -> list[str]:
    """Config keys whose value is not the same in every run, in config order.

    Where runs picked different options of a config group (``model/decoder``, ``method``),
    that choice is the column, and the values inside the group, which differ because of it,
    are not. A group's choice is the one key that other keys extend (``method`` and
    ``method.threshold``): a plain value has no keys below it.
    """
    keys = list(dict.fromkeys(key for run in runs for key in run.config))
    differing = [
        key
        for key in keys
        if any(
            run.config.get(key, _MISSING) != runs[0].config.get(key, _MISSING) for run in runs[1:]
        )
    ]
    below = {key: key.replace("/", ".") + "." for key in differing}
    groups = {key for key, prefix in below.items() if any(k.startswith(prefix) for k in differing)}
    swapped = tuple(below[key] for key in groups)
    return [key for key in differing if key in groups or not key.startswith(swapped)]


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


def format_value(value: Any) -> str:
    """A config value as a user would write it on the command line."""
    if value is _MISSING:
        return ""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


@dataclass
class Table:
    """Header and rows with raw values, so each format chooses its own precision."""

    header: list[str]
    rows: list[list[Any]]
    # columns holding numbers (right-aligned) -> decimals shown in the table and markdown
    decimals: dict[int, int]


def fold_groups(runs: Sequence[Run]) -> list[list[Run]]:
    """The runs in rows: the folds of one cross-validation together, any other run alone.

    Folds belong together when their configs, ``data.fold`` aside, are the same; a run of
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
    return statistics.fmean(present), statistics.stdev(present)


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
        config = [format_value(group[0].config.get(key, _MISSING)) for key in keys]
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


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="a sweep directory, or outputs/ (searched below)")
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
        if args.plot is not None:
            from seglab.runs.curves import plot  # matplotlib, only when asked for

            plot(runs, args.metric, args.plot)


if __name__ == "__main__":
    main()
