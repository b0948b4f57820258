"""How far repeated measurements agree: the seeds of a recipe, the folds of a cross-validation,
the repeats of a timing. One summary for all of them, so that every table and JSON record that
quotes a spread means the same thing by it."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Spread:
    """Centre and spread of repeated values.

    ``std`` is the sample standard deviation (ddof=1, the n - 1 convention), None for a single
    value, which says nothing of the spread. ``relative_spread`` is ``(max - min) / median``,
    how far apart a timing's repeats lie as a share of their typical value; None where the
    median is 0 (a difference of scores, say), for which no share exists.
    """

    count: int
    mean: float
    std: float | None
    median: float
    min: float
    max: float
    relative_spread: float | None


def spread(values: Iterable[float]) -> Spread:
    """The `Spread` of ``values`` (at least one)."""
    values = list(values)
    if not values:
        raise ValueError("spread of no values: measure at least once")
    median = statistics.median(values)
    low, high = min(values), max(values)
    return Spread(
        count=len(values),
        mean=statistics.fmean(values),
        std=statistics.stdev(values) if len(values) > 1 else None,
        median=median,
        min=low,
        max=high,
        relative_spread=(high - low) / median if median else None,
    )
