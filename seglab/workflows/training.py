"""Training a run and continuing one: ``seglab-train``'s work, from a composed config to the
fitted and tested checkpoints and the metrics a sweeper optimises."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from seglab.compression.channel_pruning import PRUNED_KEY
from seglab.config.spec import resolve_spec
from seglab.data import DatasetError, SegmentationDataModule
from seglab.engine.checkpoints import CheckpointWriteError, model_state
from seglab.engine.nonfinite import NonFiniteGuard, NonFiniteLossError
from seglab.engine.resume import resume
from seglab.errors import SeglabError
from seglab.models.cost import GFLOPS, PARAMS, cost_metrics
from seglab.runs.directories import check_fresh_run_dir
from seglab.runs.environment import write_environment
from seglab.runs.summary import print_summary, run_summary
from seglab.sweeps.objective import check_strategy
from seglab.workflows.build import (
    apply_performance_options,
    build_datamodule,
    build_model,
    build_task,
    build_trainer,
    check_training_size,
    checkpoint_model,
    resolve_class_weights,
    setup_data,
)

log = logging.getLogger(__name__)


def train(cfg: DictConfig, model: torch.nn.Module | None = None) -> dict[str, float]:
    """Fit, then test the best checkpoint; returns the final metrics (for sweepers too).

    ``model`` replaces the network of ``cfg`` (seglab-prune's pruned one, whose channel counts
    the config does not say); a resumed pruned run takes those of its checkpoint's weights.
    """
    run_dir = Path(cfg.paths.output_dir)
    check_strategy(cfg)
    # .hydra/ of a fresh run, .hydra/resume-<time>/ of a resume (conf/hydra/default.yaml)
    record_dir = run_dir / (HydraConfig.get().output_subdir or ".hydra")
    try:
        resumed = resume(cfg, run_dir, list(HydraConfig.get().overrides.task))
    except SeglabError:
        # a refused resume leaves the run as it was: no record of a command that did nothing
        if record_dir.parent == run_dir / ".hydra" and record_dir.name.startswith("resume-"):
            shutil.rmtree(record_dir, ignore_errors=True)
        raise
    # the one reading of what the config means: the resumed run's own config, if resumed
    spec = resolve_spec(resumed.config if resumed is not None else cfg)
    cfg = spec.config
    nonfinite = NonFiniteGuard(spec.nonfinite)
    # other ranks of a distributed run join rank 0's directory (Lightning pins them to it)
    if rank_zero_only.rank == 0:
        if resumed is None:
            check_fresh_run_dir(run_dir)
        record_dir.mkdir(parents=True, exist_ok=True)
    seed = pl.seed_everything(cfg.seed, workers=True)
    if rank_zero_only.rank == 0:  # other ranks are relaunched with hydra.output_subdir=null
        write_environment(record_dir, seed)
    # every check of the config comes before the first file is read
    datamodule = build_datamodule(spec)
    if model is None and resumed is not None and cfg.get(PRUNED_KEY):
        stored = torch.load(resumed.checkpoint, map_location="cpu", weights_only=True, mmap=True)
        model = checkpoint_model(spec, model_state(stored))
    model = build_model(spec) if model is None else model
    check_training_size(datamodule, model)
    trainer = build_trainer(spec, purge_step=resumed.step if resumed else None)
    if nonfinite.action == "skip" and trainer.world_size > 1:
        raise SeglabError(
            f"on_nonfinite=skip runs on one device only ({trainer.world_size} processes here): "
            "Lightning cannot skip a batch on some processes of a distributed run; use "
            "on_nonfinite=stop"
        )
    setup_data(datamodule, "fit")
    # numbers for `median_frequency`, so that the record says what the checkpoint will hold
    spec = resolve_class_weights(spec, datamodule)
    if rank_zero_only.rank == 0:
        # .hydra/config.yaml keeps ${now:} and ${oc.env:} unresolved; this copy is what ran
        OmegaConf.save(spec.config, record_dir / "config_resolved.yaml", resolve=True)
    # the loss is built (and refused if it does not fit the mode) before anything is logged
    task = build_task(spec, datamodule, model, nonfinite)
    task.method.attach(datamodule)
    cost = _model_cost(model, datamodule)
    if resumed is None:  # a resumed run logged them when it started
        for logger in trainer.loggers:
            logger.log_metrics(cost, step=0)
    apply_performance_options(spec, task, training=True)
    # a resume restores weights, optimizer, scheduler, loops and callbacks (best.ckpt's score)
    try:
        trainer.fit(
            task,
            datamodule=datamodule,
            ckpt_path=resumed.checkpoint if resumed else None,
            weights_only=True,
        )
    except NonFiniteLossError as error:
        raise SeglabError(
            f"{error}; the run stopped there (on_nonfinite=stop) and kept the checkpoints "
            f"written before it in {run_dir / 'checkpoints'}; resume from one once the cause is "
            "found, or skip such batches with on_nonfinite=skip"
        ) from None
    except CheckpointWriteError as error:
        raise SeglabError(str(error)) from None
    except DatasetError as error:
        raise SeglabError(_worker_message(error)) from None
    metrics = {
        name: float(value) for name, value in trainer.callback_metrics.items() if value.numel() == 1
    }
    metrics.update(cost)
    # the checkpoint callback that ranks by a metric (the other one keeps last.ckpt)
    ranking = [c for c in trainer.checkpoint_callbacks if getattr(c, "monitor", None)]
    missing_test = datamodule.split_unavailable("test")
    if cfg.get("test_after_fit") and not trainer.interrupted and missing_test is not None:
        log.warning("skipping the test phase after fit: %s", missing_test)
    elif cfg.get("test_after_fit") and not trainer.interrupted:
        setup_data(datamodule, "test")
        best = ranking[0].best_model_path if ranking else ""
        # the summary's test line gives the headline scores, TensorBoard every class's
        trainer.test(
            task, datamodule=datamodule, ckpt_path=best or None, weights_only=True, verbose=False
        )
        metrics.update(
            {
                name: float(value)
                for name, value in trainer.callback_metrics.items()
                if name.startswith("test/") and value.numel() == 1
            }
        )
    # a sweep's jobs share one terminal: the sweep says where they went
    if rank_zero_only.rank == 0 and HydraConfig.get().mode != RunMode.MULTIRUN:
        print_summary(run_summary(run_dir, ranking[0] if ranking else None, metrics))
    return metrics


def _model_cost(model: torch.nn.Module, datamodule: SegmentationDataModule) -> dict[str, float]:
    """The model's size and compute (``seglab.models.cost``) for one image at the size it
    trains on: the data config's fixed training size (``data.augment.crop_size``, the synthetic
    ``data.image_size``), or the first val image's when training images keep their own sizes."""
    size = datamodule.training_size()
    try:
        height, width = size[2] if size else datamodule.dataset("val")[0][0].shape[-2:]
    except DatasetError as error:
        raise SeglabError(str(error)) from None
    cost = cost_metrics(model, (1, datamodule.in_channels, height, width))
    log.info(
        "model: %d parameters, %.4g GFLOPs per %dx%d image (a multiply-add counted as 2 FLOPs)",
        cost[PARAMS],
        cost[GFLOPS],
        height,
        width,
    )
    return cost


def _worker_message(error: Exception) -> str:
    """The message of an error, without the traceback a dataloader worker wraps it in."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Caught "):
        # the last line is "<module>.<ErrorType>: <message>"
        return lines[-1].split(": ", 1)[-1]
    return str(error)
