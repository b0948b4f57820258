"""What ``seglab-reproduce`` does: train a run again from its saved config, then
compare the metrics of both runs.

A run's ``.hydra/config.yaml`` is the composed config: it has no defaults list and no ``hydra``
node, so Hydra alone would put a re-run in its own ``outputs/<date>/<time>``, outside
``paths.output_root``. `RunConfigSearchPath` gives such re-runs seglab's run directories;
``seglab-train`` registers it, so ``seglab-train --config-path <run>/.hydra --config-name
config`` re-runs a run as well, and this command is that re-run plus the comparison.

A run directory may come from anyone, and its config names what the re-run builds: it is held
to what seglab's own conf/ builds (`seglab.config.trust`) before anything is composed from it.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.plugins import Plugins
from hydra.plugins.search_path_plugin import SearchPathPlugin
from omegaconf import OmegaConf

from seglab.config.location import config_dir
from seglab.config.trust import HYDRA_CALLBACKS, RERUN_RESOLVER_VALUES, untrusted_part
from seglab.config.upgrade import upgrade_config, upgrade_targets
from seglab.visualization.tables import text_table

# holds hydra/env/default.yaml, the hook Hydra composes into its own settings
PROG = "seglab-reproduce"
_RERUN_CONF = Path(__file__).resolve().parent / "rerun_conf"


def is_saved_config_dir(path: Path) -> bool:
    """Whether ``path`` is the ``.hydra`` directory Hydra wrote for a run."""
    return (path / "config.yaml").is_file() and (path / "hydra.yaml").is_file()


class RunConfigSearchPath(SearchPathPlugin):
    """seglab's run directories for a primary config that is a run's saved ``config.yaml``.

    Hydra composes ``hydra/env/default`` (its own is empty) into its settings before the
    primary config. seglab's option, put first on the search path, selects
    conf/hydra/default.yaml from seglab's conf/, appended to the search path. Other primary
    configs are left alone: seglab's train.yaml selects hydra/default itself, and it may not
    appear twice.
    """

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        main = next((e.path for e in search_path.get_path() if e.provider == "main"), None)
        if main is None or not is_saved_config_dir(Path(main.removeprefix("file://"))):
            return
        search_path.prepend("seglab-rerun", f"file://{_RERUN_CONF}")
        search_path.append("seglab", f"file://{config_dir()}")


def register_search_path() -> None:
    """Make `RunConfigSearchPath` part of every Hydra composition in this process."""
    Plugins.instance().register(RunConfigSearchPath)


def new_run_dir(saved: Path, overrides: list[str]) -> Path:
    """The directory seglab-train gives a re-run of ``saved``: a new one in seglab's layout."""
    register_search_path()
    with initialize_config_dir(config_dir=str(saved), version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    return Path(cfg.hydra.run.dir).resolve()


def upgraded_config_dir(saved: Path, scratch: Path) -> Path:
    """The ``.hydra`` directory to re-run ``saved`` from: ``saved`` itself where today's seglab
    wrote it, else a copy in ``scratch`` in today's form (`seglab.config.upgrade`: moved
    ``_target_`` paths, keys an earlier seglab did not write), so that it is checked against
    today's allowlist and builds today's classes. ``saved`` itself is never changed."""
    files = {name: saved / name for name in ("config.yaml", "hydra.yaml")}
    texts = {name: OmegaConf.load(path) for name, path in files.items()}
    plain = {name: OmegaConf.to_container(node, resolve=False) for name, node in texts.items()}
    upgraded = {
        "config.yaml": upgrade_config(copy.deepcopy(plain["config.yaml"])),
        "hydra.yaml": upgrade_targets(copy.deepcopy(plain["hydra.yaml"])),
    }
    if upgraded == plain:
        return saved
    scratch.mkdir(parents=True, exist_ok=True)
    for name, node in upgraded.items():
        OmegaConf.save(OmegaConf.create(node), scratch / name)
    return scratch


def untrusted_run(saved: Path) -> str | None:
    """Why the run whose ``.hydra`` directory is ``saved`` may not be re-run, else None.

    ``config.yaml`` may build only seglab's components and call only the resolvers conf/
    writes; ``hydra.yaml`` may name only seglab's own Hydra callbacks.
    """
    config_file, hydra_file = saved / "config.yaml", saved / "hydra.yaml"
    config = OmegaConf.to_container(OmegaConf.load(config_file), resolve=False)
    untrusted = untrusted_part(config, resolver_values=RERUN_RESOLVER_VALUES)
    if untrusted is not None:
        return f"{config_file}: {untrusted.reason}"
    callbacks = OmegaConf.select(OmegaConf.load(hydra_file), "hydra.callbacks") or {}
    for name, callback in callbacks.items():
        target = callback.get("_target_") if OmegaConf.is_dict(callback) else callback
        if target not in HYDRA_CALLBACKS:
            key = f"hydra.callbacks.{name}._target_"
            return f"{hydra_file}: {key}={target} is not one of seglab's Hydra callbacks"
    return None


def summary(scalars: dict[str, list[tuple[int, float]]]) -> dict[str, float]:
    """The numbers two runs are compared on, by name; tags a run did not log are left out."""
    rows: dict[str, float] = {}
    for tag, reduce, name in (
        ("val/mIoU", max, "best val/mIoU"),
        ("val/mDice", max, "best val/mDice"),
        ("val/loss", lambda values: values[-1], "final val/loss"),
    ):
        if scalars.get(tag):
            rows[name] = reduce([value for _, value in scalars[tag]])
    epochs = {step: int(value) for step, value in scalars.get("epoch", [])}
    for step, value in scalars.get("val/mIoU", []):
        when = f"epoch {epochs[step]}" if step in epochs else f"step {step}"
        rows[f"val/mIoU {when}"] = value
    return rows


def compare(original: dict[str, float], rerun: dict[str, float]) -> tuple[str, float, str]:
    """The side-by-side table, the largest absolute difference and the row it is in.

    A row only one run has counts as an infinite difference.
    """
    names = list(original) + [name for name in rerun if name not in original]
    rows = []
    largest, where = 0.0, ""
    for name in names:
        old, new = original.get(name), rerun.get(name)
        difference = math.inf if old is None or new is None else abs(new - old)
        if difference > largest:
            largest, where = difference, name
        shown = "missing" if difference == math.inf else _cell(difference)
        rows.append([name, _cell(old), _cell(new), shown])
    header = ["metric", "original", "re-run", "difference"]
    return text_table(header, rows, "<>>>"), largest, where


def _cell(value: float | None) -> str:
    """Every digit a float holds: equal cells are equal numbers."""
    return "-" if value is None else repr(value)
