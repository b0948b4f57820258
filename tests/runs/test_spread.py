"""seglab.runs.spread: one summary of repeated values for every table and record that quotes
a spread; values worked by hand."""

from __future__ import annotations

import math

import pytest

from seglab.runs.spread import Spread, spread


def test_spread_of_repeats() -> None:
    # mean 9 / 3; deviations -2, -1, 3 -> sample variance 14 / 2
    assert spread([1.0, 2.0, 6.0]) == Spread(
        count=3, mean=3.0, std=math.sqrt(7.0), median=2.0, min=1.0, max=6.0, relative_spread=2.5
    )


def test_a_single_value_has_no_standard_deviation() -> None:
    summary = spread(iter([4.0]))
    assert (summary.mean, summary.std, summary.relative_spread) == (4.0, None, 0.0)


def test_no_share_of_a_zero_median() -> None:
    summary = spread([-1.0, 0.0, 1.0])
    assert (summary.std, summary.relative_spread) == (1.0, None)


def test_no_values_is_refused() -> None:
    with pytest.raises(ValueError, match="at least once"):
        spread([])
