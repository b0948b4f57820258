"""``seglab-eval ckpt_path=<file> [split=val|test] [overrides]``: score a checkpoint."""

from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from seglab.experiment import SeglabError, config_dir, evaluate, format_report


@hydra.main(config_path=str(config_dir()), config_name="eval", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        report = evaluate(cfg, list(HydraConfig.get().overrides.task))
    except SeglabError as error:
        print(f"seglab-eval: error: {error}", file=sys.stderr)
        sys.exit(2)
    print(format_report(report))
    print(f"metrics written to {cfg.paths.output_dir}/metrics.json")


if __name__ == "__main__":
    main()
