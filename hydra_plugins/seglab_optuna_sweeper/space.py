"""From the sweeper's settings to Optuna objects: the search space parsed from Hydra's override
grammar, and the sampler. A bad value is a ``SweepError`` naming its key.

Optuna is imported where an object of it is made: Hydra imports this module at start-up, in
every command and on a base install too, where Optuna is absent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, RangeSweep, Transformer

from seglab.errors import SweepError

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

SAMPLERS = ("tpe", "random", "grid", "cmaes")
DIRECTIONS = ("maximize", "minimize")


def parse_space(
    params: dict[str, str], arguments: Sequence[str]
) -> tuple[dict[str, BaseDistribution], list[str]]:
    """The searched keys with their distributions, and the overrides every trial shares.

    ``params`` (``hydra.sweeper.params``) come first and the command line's ``arguments``
    after, so a search value or a fixed value on the command line replaces the config's.
    """
    lines = [f"{key}={value}" for key, value in params.items()] + list(arguments)
    try:
        parsed = OverridesParser.create().parse_overrides(lines)
    except Exception as error:
        raise SweepError(f"hydra.sweeper.params: {error}".splitlines()[0]) from None
    space: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    for override in parsed:
        key = override.get_key_element()
        space.pop(key, None)
        fixed.pop(key, None)
        if override.is_sweep_override():
            space[key] = _distribution(override)
        else:
            fixed[key] = override.input_line or f"{key}={override.get_value_element_as_str()}"
    return space, list(fixed.values())


def _distribution(override: Override) -> BaseDistribution:
    """``choice`` is categorical; ``range`` of integers an int grid, of floats its values;
    ``interval`` a float (or int, under ``int(...)``) span, on a log scale under ``tag(log)``."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    key = override.get_key_element()
    value = override.value()
    if isinstance(value, IntervalSweep):
        low, high, log = value.start, value.end, "log" in value.tags
        if isinstance(low, int) and isinstance(high, int):
            return IntDistribution(low, high, log=log)
        return FloatDistribution(float(low), float(high), log=log)
    if override.is_choice_sweep() or isinstance(value, RangeSweep):
        choices = list(override.sweep_iterator(transformer=Transformer.encode))
        if not choices:
            raise SweepError(f"{key}: {override.input_line} has no values to search")
        if isinstance(value, RangeSweep) and all(type(c) is int for c in choices):
            step = choices[1] - choices[0] if len(choices) > 1 else 1
            if step > 0:
                return IntDistribution(choices[0], choices[-1], step=step)
        return CategoricalDistribution(choices)
    raise SweepError(
        f"{key}: {override.input_line} cannot be searched; use choice, range, interval or "
        "tag(log, interval(...))"
    )


def override_value(value: Any) -> str:
    """A sampled value as the override grammar reads it back with the same type."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return str(value)


def study_directions(
    names: list[str], direction: str, directions: Sequence[str] | None
) -> list[str]:
    """The direction of each metric of ``optimized_metric`` (``names``): ``directions``, one a
    metric, or for a single metric ``direction`` when ``directions`` is unset."""
    if not names:
        raise SweepError(
            "optimized_metric is not set: name the metric the search optimises "
            "(optimized_metric=val/mIoU_best) or a list of them"
        )
    if directions is None:
        if len(names) > 1:
            raise SweepError(
                f"optimized_metric names {len(names)} metrics ({', '.join(names)}): set "
                "hydra.sweeper.directions to a direction for each, e.g. [maximize, minimize]"
            )
        keys, chosen = ["hydra.sweeper.direction"], [direction]
    else:
        chosen = [str(d) for d in directions]
        keys = [f"hydra.sweeper.directions[{i}]" for i in range(len(chosen))]
        if len(chosen) != len(names):
            raise SweepError(
                f"hydra.sweeper.directions=[{', '.join(chosen)}] gives {len(chosen)} directions "
                f"for the {len(names)} metrics of optimized_metric ({', '.join(names)}); give "
                "one for each"
            )
    for key, value in zip(keys, chosen, strict=True):
        if value not in DIRECTIONS:
            raise SweepError(f"{key}={value} is neither maximize nor minimize")
    return chosen


def build_sampler(
    name: str,
    seed: int | None,
    n_startup_trials: int,
    space: dict[str, BaseDistribution],
    objectives: int = 1,
) -> optuna.samplers.BaseSampler:
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return _grid_sampler(grid(space), seed)
    if name == "cmaes":
        if objectives > 1:
            raise SweepError(
                f"hydra.sweeper.sampler=cmaes optimises one metric, not the {objectives} of "
                "optimized_metric; use sampler=tpe or random"
            )
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise SweepError(
                "hydra.sweeper.sampler=cmaes needs the cmaes package: pip install cmaes"
            ) from None
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=n_startup_trials)
    raise SweepError(f"hydra.sweeper.sampler={name} is not a sampler; use one of {SAMPLERS}")


def _grid_sampler(values: dict[str, list[Any]], seed: int | None) -> optuna.samplers.BaseSampler:
    """Optuna's grid sampler, without its ``study.stop()`` once the grid is done: that works
    only inside ``study.optimize``; the sweeper asks no more trials than grid points left."""
    from optuna.samplers import GridSampler

    class Grid(GridSampler):
        def after_trial(self, *args: Any, **kwargs: Any) -> None:
            pass

    return Grid(values, seed=seed)


def grid(space: dict[str, BaseDistribution]) -> dict[str, list[Any]]:
    """Every value of each key, for the grid sampler: a span has no finite set of them."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    values: dict[str, list[Any]] = {}
    for key, distribution in space.items():
        if isinstance(distribution, CategoricalDistribution):
            values[key] = list(distribution.choices)
        elif isinstance(distribution, IntDistribution) and not distribution.log:
            step = distribution.step
            values[key] = list(range(distribution.low, distribution.high + 1, step))
        else:
            raise SweepError(
                f"hydra.sweeper.params.{key}: sampler=grid needs choice(...) or range(...), "
                "not an interval"
            )
    return values
