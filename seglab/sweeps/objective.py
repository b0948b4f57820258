"""What Hydra's sweeper and launcher plugins need from seglab: a failed trial that does not end
an Optuna search, and parallel jobs that share the machine instead of each taking all of it."""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from seglab.errors import SeglabError, SweepError

log = logging.getLogger(__name__)


def objective_names(optimized_metric: Any) -> list[str]:
    """The metrics a search optimises: ``optimized_metric`` is one name, or a list of them for
    a multi-objective search (``[val/mIoU_best, model/gflops]``); none when it is unset."""
    if optimized_metric is None:
        return []
    if isinstance(optimized_metric, str):
        return [optimized_metric]
    return [str(name) for name in optimized_metric]


def objective(metrics: dict[str, float], optimized_metric: Any) -> float | list[float] | None:
    """The value of ``optimized_metric`` a sweeper optimises (None if it is unset; a list, in
    the same order, for a list of metrics), or an error saying why there is none.

    The sweeper records a job that raised as a failed trial, with the error in the job's log,
    and goes on; a missing or non-finite value is raised so that it says why.
    """
    values = []
    for name in objective_names(optimized_metric):
        if name not in metrics:
            raise SeglabError(
                f"optimized_metric={name} is not among the run's metrics "
                f"({', '.join(sorted(metrics))}); set optimized_metric to one of them"
            )
        value = metrics[name]
        if not math.isfinite(value):
            raise SeglabError(
                f"optimized_metric={name} is {value}: the run diverged (try a lower optimizer.lr)"
            )
        values.append(value)
    if optimized_metric is None or isinstance(optimized_metric, str):
        return values[0] if values else None
    return values


def job_share(
    n_jobs: int, job_num: int, cpu_count: int, device_count: int
) -> tuple[int, int | None]:
    """Torch threads and GPU index of one of ``n_jobs`` jobs running at once on one machine.

    Torch uses every core by default, so parallel jobs would each start ``cpu_count`` threads
    and slow one another down; and each would take GPU 0. ``n_jobs`` follows joblib: -1 means
    one job per core, -2 one fewer, and so on.
    """
    if n_jobs == 0:
        raise SeglabError("hydra.launcher.n_jobs=0 runs nothing; use a positive count or -1")
    running = n_jobs if n_jobs > 0 else max(1, cpu_count + 1 + n_jobs)
    threads = max(1, cpu_count // running)
    return threads, (job_num % device_count if device_count else None)


def share_machine(cfg: DictConfig) -> None:
    """Under the joblib launcher, give this job its share of the cores and its own GPU.

    The GPU is chosen by writing ``trainer.devices=[index]``, so the run's saved config says
    where it ran; a user's explicit multi-device ``trainer.devices`` is left as it is.
    """
    hydra_cfg = HydraConfig.get()
    launcher = hydra_cfg.launcher
    if not str(launcher.get("_target_", "")).endswith("JoblibLauncher"):
        return
    cpu_count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    device_count = torch.cuda.device_count()
    threads, device = job_share(
        int(launcher.n_jobs), int(hydra_cfg.job.num), cpu_count or 1, device_count
    )
    torch.set_num_threads(threads)
    uses_gpu = cfg.trainer.get("accelerator") in ("auto", "gpu", "cuda")
    if device is not None and uses_gpu and cfg.trainer.get("devices") in (1, "auto"):
        cfg.trainer.devices = [device]
    log.info(
        "parallel job %s of hydra.launcher.n_jobs=%s: %d torch threads, trainer.devices=%s",
        hydra_cfg.job.num,
        launcher.n_jobs,
        threads,
        cfg.trainer.get("devices"),
    )


#: Strategies whose launcher re-executes the command line for the other ranks.
_RELAUNCHING_STRATEGIES = ("ddp", "ddp_find_unused_parameters_true", "deepspeed", "fsdp")


def check_strategy(cfg: DictConfig) -> None:
    """A relaunched multirun command would run the whole sweep again in every rank."""
    strategy = OmegaConf.select(cfg, "trainer.strategy")
    if not isinstance(strategy, str) or strategy not in _RELAUNCHING_STRATEGIES:
        return
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        raise SweepError(
            f"trainer.strategy={strategy} relaunches the command for every rank, which in a "
            "multirun would start the whole sweep again in each of them; use "
            "trainer.strategy=ddp_spawn for sweeps, run one job per node with "
            "hydra/launcher=slurm, or train single runs with trainer=ddp"
        )
