"""``seglab-train``: compose conf/train.yaml with the command line's overrides and fit."""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig

from seglab.config.check import check_command_line
from seglab.engine.checkpoints import RunInterrupted
from seglab.errors import SweepError, fail, reported
from seglab.extras import require_launcher
from seglab.runs.directories import SWEPT_KEYS_ENV
from seglab.runs.reproduce import register_search_path
from seglab.sweeps.objective import objective, objective_names, share_machine
from seglab.workflows.mounting import command_line_value, config_dir
from seglab.workflows.training import train

log = logging.getLogger(__name__)
PROG = "seglab-train"


@hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")
def _main(cfg: DictConfig) -> float | list[float | None] | None:
    """Return the optimised metric (a list of them for a list) so that Hydra sweepers (e.g.
    Optuna) can read it.

    In a multirun a failure is raised, not turned into an exit: Hydra then records the job as
    failed and an Optuna search goes on with its next trial. A signal stops the whole command,
    with the shell's exit status for it (128 + its number: 143 for SIGTERM, 130 for SIGINT).
    """
    if HydraConfig.get().mode != RunMode.MULTIRUN:
        try:
            with reported(PROG):
                metrics = train(cfg)
        except RunInterrupted as interrupted:
            exit_interrupted(PROG, interrupted)
        values = [metrics.get(name) for name in objective_names(cfg.get("optimized_metric"))]
        return values[0] if isinstance(cfg.get("optimized_metric"), str) else values or None
    share_machine(cfg)
    try:
        return objective(train(cfg), cfg.get("optimized_metric"))
    except SweepError as error:
        fail(PROG, str(error))
    except RunInterrupted as interrupted:
        exit_interrupted(PROG, interrupted)
    except Exception as error:
        log.error("job %s failed: %s: %s", HydraConfig.get().job.num, type(error).__name__, error)
        raise


def exit_interrupted(prog: str, interrupted: RunInterrupted) -> NoReturn:
    """Say where a run stopped by a signal stands and how to continue it; exit with the
    shell's status for the signal."""
    resume = (
        f"; continue with: seglab-train ckpt_path={interrupted.checkpoint}"
        if interrupted.checkpoint
        else ""
    )
    print(f"{prog}: {interrupted}{resume}", file=sys.stderr)
    sys.exit(128 + interrupted.signum)


def swept_keys(args: list[str]) -> list[str]:
    """The keys a multirun command line sweeps (``a=1,2``, ``b=range(3)``...), in order."""
    overrides = [arg for arg in args if "=" in arg and not arg.startswith("-")]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:  # Hydra itself reports a malformed override, with its own message
        return []
    return [override.key_or_group for override in parsed if override.is_sweep_override()]


def absolute_config_path(args: list[str]) -> list[str]:
    """``args`` with a relative ``--config-path`` (``-cp``) taken from the working directory.

    Hydra reads a relative config path from the directory of the file declaring
    ``@hydra.main``, somewhere inside the installed package; a user means their own directory.
    """
    flags = ("--config-path", "-cp")

    def absolute(path: str) -> str:
        return path if path.startswith("pkg://") else os.path.abspath(path)

    result: list[str] = []
    for arg in args:
        flag, equals, value = arg.partition("=")
        if result and result[-1] in flags:
            result.append(absolute(arg))
        elif flag in flags and equals:
            result.append(f"{flag}={absolute(value)}")
        else:
            result.append(arg)
    return result


def main() -> None:
    # Multirun jobs are named by the overrides that differ between them; the launcher may run
    # jobs in other processes, so the swept keys travel in the environment.
    if {"-m", "--multirun"} & set(sys.argv[1:]):
        os.environ[SWEPT_KEYS_ENV] = ",".join(swept_keys(sys.argv[1:]))
    # `--config-path <run>/.hydra --config-name config` re-runs a run into a new directory
    sys.argv[1:] = absolute_config_path(sys.argv[1:])
    register_search_path()
    with reported(PROG):
        require_launcher(command_line_value(sys.argv[1:], "hydra/launcher") or "")
        check_command_line(PROG, "train", sys.argv[1:], str(config_dir()))
    _main()


if __name__ == "__main__":
    main()
