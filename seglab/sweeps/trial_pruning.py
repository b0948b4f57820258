"""A trial's side of an Optuna search with pruning: report the optimised metric at every
validation to the study, and stop early, keeping the checkpoints, when the pruner says so.

The sweeper (``hydra_plugins.seglab_optuna_sweeper``) names the trial in each job's
``hydra.sweeper.trial``; the study is opened again here from ``hydra.sweeper.storage``, the
only way a job run by another process or on another node can reach it.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from seglab.errors import SweepError
from seglab.runs.directories import PRUNED_FILE
from seglab.sweeps.objective import objective_names

log = logging.getLogger(__name__)

#: The trial's user attribute that tells the sweeper the trial was pruned (after which epoch).
PRUNED_ATTR = "pruned_after_epoch"


PRUNERS = ("median", "hyperband", "none")


def build_pruner(name: str, startup_trials: int, warmup_epochs: int) -> Any:
    """The Optuna pruner ``hydra.sweeper.pruner`` names. Optuna keeps no pruner in the study, so
    the sweeper and every trial process build it from the same settings."""
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=startup_trials, n_warmup_steps=warmup_epochs
        )
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise SweepError(f"hydra.sweeper.pruner={name} is not a pruner; use one of {PRUNERS}")


def reported_metric(optimized_metric: str) -> str:
    """The per-validation value behind a best-so-far metric (``val/mIoU_best`` -> ``val/mIoU``):
    the pruner compares trials epoch by epoch."""
    return optimized_metric.removesuffix("_best")


class OptunaPruning(pl.Callback):
    """Reports ``monitor`` to ``trial`` after each validation; once the study's pruner prunes
    the trial, records it (``pruned.yaml``, the trial's ``pruned_after_epoch``) and stops the
    fit at the end of the epoch, so last.ckpt and best.ckpt are written as usual."""

    def __init__(self, trial: Any, monitor: str, run_dir: Path) -> None:
        self.trial = trial
        self.monitor = monitor
        self.run_dir = run_dir

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        prune = False
        value = trainer.callback_metrics.get(self.monitor)
        if trainer.is_global_zero and value is not None and math.isfinite(float(value)):
            epoch = trainer.current_epoch
            self.trial.report(float(value), step=epoch)
            if self.trial.should_prune():
                prune = True
                self.trial.set_user_attr(PRUNED_ATTR, epoch)
                record = {"trial": self.trial.number, "epoch": epoch, self.monitor: float(value)}
                OmegaConf.save(OmegaConf.create(record), self.run_dir / PRUNED_FILE)
                log.info("pruned by the study after epoch %d: %s=%.4f", epoch, self.monitor, value)
        if trainer.strategy.reduce_boolean_decision(prune, all=False):
            trainer.should_stop = True


def pruning_callback(cfg: DictConfig) -> OptunaPruning | None:
    """The callback for a job of seglab's Optuna sweeper; None for any other run."""
    if not HydraConfig.initialized():
        return None
    sweeper = HydraConfig.get().sweeper
    number = sweeper.get("trial")
    names = objective_names(cfg.get("optimized_metric"))
    # Optuna takes per-epoch reports, and prunes, in single-objective studies only
    if number is None or len(names) != 1:
        return None
    import optuna

    pruner = build_pruner(
        sweeper.pruner, sweeper.pruner_startup_trials, sweeper.pruner_warmup_epochs
    )
    study = optuna.load_study(study_name=sweeper.study_name, storage=sweeper.storage, pruner=pruner)
    # a study's trials are listed in the order of their numbers
    frozen = study.get_trials(deepcopy=False)[int(number)]
    trial = optuna.trial.Trial(study, frozen._trial_id)
    return OptunaPruning(trial, reported_metric(names[0]), Path(cfg.paths.output_dir))
