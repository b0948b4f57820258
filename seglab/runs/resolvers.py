"""The resolvers seglab's configs name (``${seglab.run_dir:...}``, ``${len:...}``...).

Registered by ``import seglab``, so every entry point and every test that composes a config
has them. The functions behind them are imported when a config is resolved: ``import seglab``
stays free of torch and the training stack.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from omegaconf import OmegaConf


def job_name(
    overrides: Sequence[str], num: int | str, sweeper_params: Mapping[str, Any] | None = None
) -> str:
    """``hydra.job.name`` of a multirun job (see `seglab.runs.directories.job_name`)."""
    from seglab.runs.directories import job_name as name

    return name(overrides, num, sweeper_params)


def run_dir(ckpt_path: str | None, resume: bool | str | None, fresh_dir: str) -> str:
    """A resumed run's own directory, else ``fresh_dir``."""
    from seglab.runs.directories import resumed_run_dir

    return str(resumed_run_dir(ckpt_path, resume) or fresh_dir)


def hydra_subdir(ckpt_path: str | None, resume: bool | str | None, time: str) -> str:
    """A resume records its own config beside, never over, the original run's ``.hydra/``."""
    from seglab.runs.directories import resumed_run_dir

    return f".hydra/resume-{time}" if resumed_run_dir(ckpt_path, resume) else ".hydra"


def cpu_precision() -> str:
    """``trainer=cpu``'s precision: bf16 autocast where the CPU has AMX, else float32."""
    from seglab.runs.environment import cpu_precision as precision

    return precision()


def register() -> None:
    """Register every resolver (again, harmlessly, when called twice)."""
    # conf/hydra/default.yaml: hydra.job.name, hydra.run.dir and hydra.output_subdir
    OmegaConf.register_new_resolver("seglab.job_name", job_name, replace=True)
    OmegaConf.register_new_resolver("seglab.run_dir", run_dir, replace=True)
    OmegaConf.register_new_resolver("seglab.hydra_subdir", hydra_subdir, replace=True)
    # conf/trainer/cpu.yaml: trainer.precision
    OmegaConf.register_new_resolver("seglab.cpu_precision", cpu_precision, replace=True)
    # data configs derive the class count from the class list: `${len:${.classes}}`
    OmegaConf.register_new_resolver("len", len, replace=True)
