"""The configs a Hydra command line composes, for `seglab.config.check` to check before the
command runs: the command line itself, or for a multirun each variant whose keys can differ.

A sweep over a value (``optimizer.lr=1e-3,1e-2``) composes the same keys whatever its value,
so its first value stands for all; each option of a swept config group (``model/decoder=unet,
fpn``) brings keys of its own and makes a variant. The sweeper's search space
(``hydra.sweeper.params``) sweeps the same way, but for the keys the command line sets itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob, IntervalSweep, Override
from omegaconf import DictConfig, OmegaConf


class Line(NamedTuple):
    """One override to compose, and the command-line text it came from (for messages)."""

    text: str
    origin: str


class Composer:
    """Composes one config with overrides and lists the config groups, on one search path."""

    def __init__(self, config_name: str) -> None:
        self.config_name = config_name
        self.loader = GlobalHydra.instance().config_loader()
        self._subgroups: dict[str, list[str]] = {}
        self._options: dict[str, list[str]] = {}
        self._composed: dict[tuple[str, ...], DictConfig | None] = {}

    def compose(self, lines: list[Line]) -> DictConfig | None:
        """The config ``lines`` compose, None where Hydra refuses them (the command then says
        why in Hydra's words). A variant composes the same lines more than once: kept."""
        texts = tuple(line.text for line in lines)
        if texts not in self._composed:
            try:
                composed = compose(self.config_name, list(texts), return_hydra_config=True)
            except Exception:  # any refusal: a missing group, a null option, a sweep of hydra.*
                composed = None
            self._composed[texts] = composed
        return self._composed[texts]

    def options(self, group: str) -> list[str]:
        if group not in self._options:
            self._options[group] = self.loader.get_group_options(group)
        return self._options[group]

    def subgroups(self, parts: list[str]) -> list[str]:
        """The config groups right under ``parts`` (the top-level ones for none). Listed on
        demand: each listing scans the search path, and there are dozens of groups."""
        parent = "/".join(parts)
        if parent not in self._subgroups:
            self._subgroups[parent] = self.loader.list_groups(parent)
        return self._subgroups[parent]

    def has_group(self, path: str) -> bool:
        """Whether ``path`` (``trainer``, ``model/encoder``, ``hydra/launcher``) is a group."""
        *parents, name = path.split("/")
        return all(parents) and name in self.subgroups(parents)

    def is_group(self, override: Override) -> bool:
        return "/" in override.key_or_group or self.has_group(override.key_or_group)


@contextmanager
def composing(config_path: str, config_name: str) -> Iterator[Composer]:
    """A `Composer` of ``config_name`` from the config directory ``config_path``."""
    with initialize_config_dir(config_dir=config_path, version_base="1.3"):
        yield Composer(config_name)


class Variant(NamedTuple):
    lines: list[Line]
    #: the options of swept config groups that make this variant: the jobs it stands for
    options: list[Line]


def variants(composer: Composer, overrides: list[Override], multirun: bool) -> Iterator[Variant]:
    """The first value of every sweep, then each other option of each swept group in turn;
    a multirun sweeps its sweeper's search space too."""
    lines = [Line(o.input_line, o.input_line) for o in overrides if not o.is_sweep_override()]
    sweeps = [(o, o.input_line) for o in overrides if o.is_sweep_override()]
    if multirun:
        first = composer.compose(lines + _firsts(composer, sweeps))
        if first is not None:
            swept = {o.key_or_group for o in overrides}
            sweeps += [(o, f"hydra.sweeper.params: {o.input_line}") for o in _params(first, swept)]
    firsts = _firsts(composer, sweeps)
    grouped = {o.input_line for o in overrides if composer.is_group(o)}
    grouped |= {origin for o, origin in sweeps if composer.is_group(o)}

    yield Variant(lines + firsts, [line for line in firsts if line.origin in grouped])
    for index, (override, origin) in enumerate(sweeps):
        for value in _sweep_values(composer, override)[1:]:
            line = Line(f"{override.get_key_element()}={value}", origin)
            swept = [*firsts[:index], line, *firsts[index + 1 :]]
            yield Variant(lines + swept, [line] if origin in grouped else [])


def _params(cfg: DictConfig, swept: set[str]) -> list[Override]:
    """The sweeper's search space (``hydra.sweeper.params``) as overrides, but for the keys the
    command line sweeps or sets itself."""
    params = OmegaConf.select(cfg, "hydra.sweeper.params")
    if not isinstance(params, DictConfig):
        return []
    lines = [f"{key}={value}" for key, value in params.items() if key not in swept]
    try:
        return OverridesParser.create().parse_overrides(lines)
    except Exception:  # the sweeper reports its own space
        return []


def _sweep_values(composer: Composer, override: Override) -> list[str]:
    """Values of a sweep, as override values: every option of a swept config group, and a
    first value of any other sweep (any value tells whether its key exists)."""
    value = override.value()
    if isinstance(value, Glob):
        return value.filter(composer.options(override.key_or_group))
    if isinstance(value, IntervalSweep):
        return [str(value.start)]
    values = override.sweep_string_iterator()
    if composer.has_group(override.key_or_group):
        return list(values)
    return [next(values)]


def _firsts(composer: Composer, sweeps: list[tuple[Override, str]]) -> list[Line]:
    return [
        Line(f"{o.get_key_element()}={values[0]}", origin)
        for o, origin in sweeps
        if (values := _sweep_values(composer, o))
    ]
