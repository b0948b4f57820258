"""``seglab-train``: compose conf/train.yaml with the command line's overrides and fit."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from seglab.experiment import SeglabError, config_dir, train


@hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """Return the optimised metric so that Hydra sweepers (e.g. Optuna) can read it."""
    try:
        metrics = train(cfg)
    except SeglabError as error:
        print(f"seglab-train: error: {error}", file=sys.stderr)
        sys.exit(2)
    return metrics.get(cfg.get("optimized_metric"))


if __name__ == "__main__":
    main()
