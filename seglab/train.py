"""``seglab-train``: compose conf/train.yaml with the command line's overrides and fit."""

from __future__ import annotations

import os
import sys

import hydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

from seglab.experiment import SeglabError, config_dir, train
from seglab.runs import SWEPT_KEYS_ENV


@hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")
def _main(cfg: DictConfig) -> float | None:
    """Return the optimised metric so that Hydra sweepers (e.g. Optuna) can read it."""
    try:
        metrics = train(cfg)
    except SeglabError as error:
        print(f"seglab-train: error: {error}", file=sys.stderr)
        sys.exit(2)
    return metrics.get(cfg.get("optimized_metric"))


def swept_keys(args: list[str]) -> list[str]:
    """The keys a multirun command line sweeps (``a=1,2``, ``b=range(3)``...), in order."""
    overrides = [arg for arg in args if "=" in arg and not arg.startswith("-")]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:  # Hydra itself reports a malformed override, with its own message
        return []
    return [override.key_or_group for override in parsed if override.is_sweep_override()]


def main() -> None:
    # Multirun jobs are named by the overrides that differ between them; the launcher may run
    # jobs in other processes, so the swept keys travel in the environment.
    if {"-m", "--multirun"} & set(sys.argv[1:]):
        os.environ[SWEPT_KEYS_ENV] = ",".join(swept_keys(sys.argv[1:]))
    _main()


if __name__ == "__main__":
    main()
