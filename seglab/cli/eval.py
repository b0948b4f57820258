"""``seglab-eval ckpt_path=<file> [split=val|test] [overrides]``: score a checkpoint."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from seglab.errors import reported
from seglab.workflows.evaluation import evaluate, format_report
from seglab.workflows.mounting import config_dir, on_checkpoint

PROG = "seglab-eval"


@hydra.main(config_path=str(config_dir()), config_name="eval", version_base="1.3")
def _main(cfg: DictConfig) -> None:
    with reported(PROG):
        report = evaluate(cfg)
    print(format_report(report))
    print(f"metrics written to {cfg.paths.output_dir}/metrics.json")


def main() -> None:
    on_checkpoint(PROG, _main, "eval")


if __name__ == "__main__":
    main()
