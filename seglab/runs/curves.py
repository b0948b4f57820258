"""Metric curves of runs in one figure, each labelled by what sets it apart: the ``--plot`` of
``seglab-compare``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from seglab.errors import SeglabError
from seglab.runs.records import MISSING, Run, differing_keys, format_value


def has_epochs(run: Run, metric: str) -> bool:
    """Whether Lightning logged the epoch at every step the metric was logged at."""
    epoch_steps = {step for step, _ in run.scalars.get("epoch", [])}
    return all(step in epoch_steps for step, _ in run.scalars.get(metric, []))


def curve(run: Run, metric: str, by_epoch: bool) -> tuple[list[float], list[float]]:
    """The metric's points against the epoch logged with them, or against the step.

    Steps depend on the batch size and the dataset, so epochs compare runs better where
    every run has them.
    """
    epoch_at = dict(run.scalars.get("epoch", []))
    points = run.scalars.get(metric, [])
    xs = [epoch_at[step] if by_epoch else float(step) for step, _ in points]
    return xs, [value for _, value in points]


def legend_label(run: Run, keys: Sequence[str]) -> str:
    """The run's differing values, short enough for a legend; its name if none differ.

    Swapping a config group (``model/decoder=fpn``) changes its ``_target_`` and every option
    under it: the class name alone says which group option ran. Keys a run lacks are left out.
    """
    swapped = [key.removesuffix("_target_") for key in keys if key.endswith("._target_")]
    parts = []
    for key in keys:
        value = run.config.get(key, MISSING)
        if value is MISSING:
            continue
        if key.endswith("._target_"):
            parts.append(f"{key.removesuffix('._target_')}={str(value).rsplit('.', 1)[-1]}")
        elif not key.startswith(tuple(swapped)):
            parts.append(f"{key}={format_value(value)}")
    return ", ".join(parts) or run.name


def plot(runs: Sequence[Run], metric: str, out: Path) -> None:
    """All runs' curves of ``metric`` in one PNG, each labelled by what sets it apart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    keys = differing_keys(runs)
    plotted = [run for run in runs if run.scalars.get(metric)]
    by_epoch = all(has_epochs(run, metric) for run in plotted)
    figure, axes = plt.subplots(figsize=(8, 5))
    for run in plotted:
        xs, ys = curve(run, metric, by_epoch)
        axes.plot(xs, ys, marker="o", markersize=3, label=legend_label(run, keys))
    axes.set_xlabel("epoch" if by_epoch else "step")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(metric)
    axes.grid(alpha=0.3)
    # below the axes, so that long labels never cover the curves; bbox_inches keeps it in view
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(0, -0.12))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(out, format="png", dpi=120, bbox_inches="tight")
    except OSError as error:
        raise SeglabError(f"cannot write --plot {out}: {error.strerror or error}") from None
    finally:
        plt.close(figure)
