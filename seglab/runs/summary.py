"""The lines a finished ``seglab-train`` ends on: where the run went, how good it got and when,
and the commands that look at it; the Lightning tables above scroll away."""

from __future__ import annotations

import os
from pathlib import Path

from pytorch_lightning.callbacks import ModelCheckpoint

from seglab.quiet import quiet_event_reader
from seglab.runs.directories import read_scalars
from seglab.runs.records import is_headline_test

#: TensorBoard's tab with seglab's layout of the headline curves (`seglab.engine.callbacks`).
HEADLINE_TAB = "http://localhost:6006/#custom_scalars"


def shown(path: str | Path) -> str:
    """``path`` relative to the working directory when below it, as a user would type it."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def best_step(run_dir: str | Path, tag: str, score: float) -> int | None:
    """The step TensorBoard shows the run's best ``tag`` at: its first point at ``score``.

    Lightning logs a validation at the step before the one its checkpoint stores as
    ``global_step``, so the events, not the checkpoint, say where to look on the chart.
    """
    try:
        with quiet_event_reader():
            points = read_scalars(run_dir).get(tag, [])
    except (OSError, ValueError):
        return None
    close = [step for step, value in points if abs(value - score) <= 1e-6 * max(1.0, abs(score))]
    return close[0] if close else None


def run_summary(
    run_dir: str | Path, ranking: ModelCheckpoint | None, metrics: dict[str, float]
) -> list[str]:
    """The closing lines of a run: its directory, the best value of the monitored metric with
    the step of its checkpoint, the matching test score when a test ran, and what to type next."""
    run = shown(run_dir)
    lines = [f"run:   {run}"]
    best = ranking.best_model_path if ranking is not None else ""
    score = ranking.best_model_score if ranking is not None else None
    if best and score is not None:
        step = best_step(run_dir, ranking.monitor, float(score))
        at = f" at step {step}" if step is not None else ""
        lines.append(f"best:  {ranking.monitor} {float(score):.4f}{at} ({shown(best)})")
        name = ranking.monitor.split("/", 1)[-1]
        if f"test/{name}" in metrics:
            lines.append(f"test:  {test_scores(metrics, f'test/{name}')} (of the best checkpoint)")
    lines.append(f"next:  tensorboard --logdir {run}   then {HEADLINE_TAB} (the headline curves)")
    if best:
        lines.append(f"       seglab-eval ckpt_path={shown(best)}")
    return lines


def test_scores(metrics: dict[str, float], first: str) -> str:
    """The headline test scores, ``first`` (the monitored metric's) leading: one value per
    metric, not per class, which TensorBoard and seglab-eval give."""
    headline = [tag for tag in sorted(metrics) if is_headline_test(tag)]
    ordered = [first, *(tag for tag in headline if tag != first)]
    return ", ".join(f"{tag} {metrics[tag]:.4f}" for tag in ordered)


def print_summary(lines: list[str]) -> None:
    print(os.linesep.join(["", *lines]), flush=True)


def sweep_summary(sweep_dir: str | Path, metric: str, mode: str) -> list[str]:
    """The closing lines of a sweep: its directory, the job with the best ``metric`` (as
    seglab-compare ranks them) and the command that compares them all."""
    from seglab.runs.compare import CompareError, best, compare  # reads every job's events

    sweep = shown(sweep_dir)
    lines = [f"sweep: {sweep}"]
    try:
        runs, _ = compare(Path(sweep_dir), metric, mode)
    except CompareError as error:
        lines.append(f"best:  none ({error})")
    else:
        scored = [
            (score, run.name)
            for run in runs
            if (score := best(run.scalars.get(metric, []), mode)) is not None
        ]
        if scored:
            score, name = max(scored) if mode == "max" else min(scored)
            lines.append(f"best:  {name}: {metric} {score:.4f} (of {len(runs)} jobs)")
    lines.append(f"next:  seglab-compare {sweep}")
    return lines
