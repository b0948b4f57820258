"""``seglab-prune ckpt_path=<file> [amount=0.25] [importance=l2] [overrides]``: remove a trained
network's weakest channels and fine-tune it in a run of its own (`seglab.workflows.prune`)."""

from __future__ import annotations

import sys

import hydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

from seglab.cli.train import exit_interrupted
from seglab.compression.channel_pruning import check_amount, check_importance, require_torch_pruning
from seglab.engine.checkpoints import RunInterrupted
from seglab.errors import SeglabError, reported
from seglab.workflows.mounting import command_line_value, config_dir, on_checkpoint
from seglab.workflows.prune import prune

PROG = "seglab-prune"


def check_command_line(args: list[str]) -> None:
    """Refuse a missing ``ckpt_path`` and a bad ``amount`` or ``importance`` before the
    checkpoint is read or a run directory made, and say what to install without Torch-Pruning."""
    if command_line_value(args, "ckpt_path") in (None, "", "???", "null"):
        raise SeglabError(
            "ckpt_path is required: seglab-prune ckpt_path=<run>/checkpoints/best.ckpt "
            "[amount=0.25]"
        )
    for key, check in (("amount", check_amount), ("importance", check_importance)):
        value = command_line_value(args, key)
        if value is not None:
            try:
                parsed = OverridesParser.create().parse_override(f"{key}={value}").value()
            except Exception:  # not a value Hydra can read: refused as it is
                parsed = value
            check(parsed)
    require_torch_pruning(PROG)


@hydra.main(config_path=str(config_dir()), config_name="prune", version_base="1.3")
def _main(cfg: DictConfig) -> None:
    try:
        with reported(PROG):
            metrics = prune(cfg)
    except RunInterrupted as interrupted:
        exit_interrupted(PROG, interrupted)
    best = metrics.get("val/mIoU_best")
    print(f"pruned and fine-tuned in {cfg.paths.output_dir}; best val/mIoU {best}")


def main() -> None:
    with reported(PROG):
        check_command_line(sys.argv[1:])
    on_checkpoint(PROG, _main, "prune")


if __name__ == "__main__":
    main()
