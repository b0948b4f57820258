"""What a run directory says about itself, read back: its config as it ran (flattened, without
the keys of where and how fast), its logged scalars and whether a pruner stopped it. The
table of ``seglab-compare`` and the curves of its ``--plot`` are both made of these."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

from seglab.config.keys import is_compared
from seglab.runs.directories import (
    PRUNED_FILE,
    event_dir,
    group_choices,
    load_events,
    read_scalars,
    wall_time,
)

#: a key a run's config lacks
MISSING = object()
_RESOLVER_CALL = re.compile(r"\$\{[\w.]+:")


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
    ``--logdir root``; a run given as ``root`` itself is named by its directory.
    """
    events = load_events(run_dir)
    return Run(
        name=run_dir.relative_to(root).as_posix() if run_dir != root else run_dir.name,
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
        if any(run.config.get(key, MISSING) != runs[0].config.get(key, MISSING) for run in runs[1:])
    ]
    below = {key: key.replace("/", ".") + "." for key in differing}
    groups = {key for key, prefix in below.items() if any(k.startswith(prefix) for k in differing)}
    swapped = tuple(below[key] for key in groups)
    return [key for key in differing if key in groups or not key.startswith(swapped)]


def is_headline_test(tag: str) -> bool:
    """A test score of the whole split (``test/mIoU``), not of one class (``test/IoU/road``)."""
    return tag.startswith("test/") and tag.count("/") == 1


def format_value(value: Any) -> str:
    """A config value as a user would write it on the command line."""
    if value is MISSING:
        return ""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)
