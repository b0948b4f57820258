"""The one place where a run spec (`seglab.config.spec`) becomes objects: datamodule, model,
loss, task, inferer and trainer, and where its performance options are applied.

Every command and script builds through these functions, so a config means the same thing
everywhere and a checkpoint's stored config rebuilds its run.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import replace
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from lightning_fabric.plugins import TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ProgressBar
from pytorch_lightning.loggers import MLFlowLogger, TensorBoardLogger

from seglab.compression.channel_pruning import PRUNED_KEY, shrink_to
from seglab.config.spec import RunSpec
from seglab.data import DatasetError, SegmentationDataModule
from seglab.data.stats import class_statistics
from seglab.engine.callbacks import IntervalProgressBar
from seglab.engine.checkpoints import AtomicCheckpointIO, model_state
from seglab.engine.nonfinite import NonFiniteGuard
from seglab.engine.task import SegmentationTask
from seglab.errors import SeglabError
from seglab.inference.inferer import Inferer
from seglab.metrics.boundary import BoundaryMetric
from seglab.quiet import quiet_lightning
from seglab.sweeps.mlflow_logging import MLflowRecord, require_mlflow
from seglab.sweeps.trial_pruning import pruning_callback

log = logging.getLogger(__name__)


def _instantiate(node: DictConfig, **kwargs: Any) -> Any:
    """``instantiate(node, **kwargs)``, with a constructor's refusal of a value as one-line
    SeglabError."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        reported = _instantiation_error(error)
        if reported is None:
            raise
        raise reported from None


def _instantiation_error(error: InstantiationException) -> SeglabError | None:
    """The one-line error of a constructor that refused a config value, or None for a bug.

    Constructors name the key and value in their ``ValueError``s (a missing file is a
    ``FileNotFoundError``, a missing optional dependency a ``SeglabError``); Hydra wraps those
    in a multi-line report ending with the node's ``full_key``, which is added when the
    message does not already start with it.
    """
    cause = error.__cause__
    if not isinstance(cause, ValueError | FileNotFoundError | SeglabError):
        return None
    message = str(cause)
    node = next(
        (line.split(":", 1)[1].strip() for line in str(error).splitlines() if "full_key:" in line),
        "",
    )
    return SeglabError(message if not node or message.startswith(node) else f"{node}: {message}")


def build_datamodule(spec: RunSpec) -> SegmentationDataModule:
    """The datamodule of ``spec.config.data``; its mode and method were checked in the spec,
    before any file is read."""
    datamodule = _instantiate(spec.config.data)
    if not isinstance(datamodule, SegmentationDataModule):
        raise SeglabError(
            f"data._target_={spec.config.data.get('_target_')} does not build a "
            "SegmentationDataModule"
        )
    return datamodule


def setup_data(datamodule: SegmentationDataModule, stage: str) -> None:
    """Build (and so check) the splits of ``stage`` before any training or evaluation starts."""
    try:
        datamodule.setup(stage)
    except DatasetError as error:
        raise SeglabError(str(error)) from None


def median_frequency_weights(datamodule: SegmentationDataModule) -> list[float]:
    """Median-frequency class weights of the train split (cached with its scan, if any)."""
    try:
        class_pixels, image_pixels = datamodule.class_pixel_counts("train")
    except DatasetError as error:
        raise SeglabError(str(error)) from None
    return class_statistics(datamodule.classes, class_pixels, image_pixels).median_frequency_weights


def resolve_class_weights(spec: RunSpec, datamodule: SegmentationDataModule) -> RunSpec:
    """``spec`` with every ``class_weights: median_frequency`` of the loss replaced by numbers.

    The numbers then reach both the loss and the config stored in checkpoints, so that a
    checkpoint rebuilds its loss without its training data.
    """
    if not spec.pending_class_weights:
        return spec
    return spec.with_class_weights(median_frequency_weights(datamodule))


def build_model(spec: RunSpec) -> torch.nn.Module:
    """The network of ``spec``, its head with the channels of the task mode (one for binary,
    one per class otherwise)."""
    cfg = spec.config
    if cfg.model.get("num_classes") != cfg.data.num_classes:
        raise SeglabError(
            f"model.num_classes={cfg.model.get('num_classes')} differs from "
            f"data.num_classes={cfg.data.num_classes}: the model cannot score this dataset"
        )
    model_channels = OmegaConf.select(cfg, "model.encoder.in_channels")
    data_channels = OmegaConf.select(cfg, "data.in_channels")
    if None not in (model_channels, data_channels) and model_channels != data_channels:
        raise SeglabError(
            f"model.encoder.in_channels={model_channels} differs from data.in_channels="
            f"{data_channels}; set both to the same value"
        )
    return _instantiate(cfg.model, num_classes=spec.mode.channels(cfg.data.num_classes))


def check_training_size(datamodule: SegmentationDataModule, model: torch.nn.Module) -> None:
    """Refuse training images smaller than the model's stride, before any data is read.

    A Segmenter pads its input to a multiple of its stride: a crop smaller than the stride
    leaves the coarsest features with nothing but padding to see. Other crops are only padded,
    which costs the padded pixels' compute, so they are reported and allowed.
    """
    size = datamodule.training_size()
    stride = getattr(model, "size_multiple", None)
    if size is None or stride is None:
        return
    key, value, (height, width) = size
    if min(height, width) < stride:
        raise SeglabError(
            f"{key}={value} gives {height}x{width} training images, smaller than the model's "
            f"stride {stride} (model.encoder): give every side at least {stride} pixels"
        )
    if height % stride or width % stride:
        log.info(
            "%s=%s: training images of %dx%d are padded to a multiple of the model's stride %d",
            key,
            value,
            height,
            width,
            stride,
        )


def build_inferer(spec: RunSpec, model: torch.nn.Module, image_scale: float = 1.0) -> Inferer:
    """How ``model`` runs whole images (windows, test-time augmentation): ``inference``."""
    try:
        inferer = instantiate(spec.config.inference, _convert_="all")
        return inferer(model, image_scale=image_scale, mode=spec.mode)
    except (InstantiationException, ValueError) as error:
        cause = error.__cause__ if isinstance(error, InstantiationException) else error
        if not isinstance(cause, ValueError):
            raise
        raise SeglabError(f"inference: {cause}") from None


def build_boundary_metric(
    spec: RunSpec, datamodule: SegmentationDataModule
) -> BoundaryMetric | None:
    """The boundary metric of ``metrics.boundary``, None when the spec has it off."""
    if spec.boundary is None:
        return None
    try:
        return BoundaryMetric(
            len(datamodule.classes),
            datamodule.ignore_index,
            spec.boundary.dilation_ratio,
            spec.boundary.hd95,
        )
    except ValueError as error:
        raise SeglabError(f"metrics.boundary.{error}") from None


def build_task(
    spec: RunSpec,
    datamodule: SegmentationDataModule,
    model: torch.nn.Module | None = None,
    nonfinite: NonFiniteGuard | None = None,
) -> SegmentationTask:
    """The task of ``spec`` around ``model`` and ``nonfinite`` (each built from ``spec`` when
    not given), the model in the memory format of ``trainer.channels_last``."""
    spec = resolve_class_weights(spec, datamodule)
    cfg = spec.config
    scheduler = cfg.get("scheduler")
    model = build_model(spec) if model is None else model
    return SegmentationTask(
        model=model,
        loss=_instantiate(cfg.loss),
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(scheduler) if scheduler is not None else None,
        classes=datamodule.classes,
        ignore_index=datamodule.ignore_index,
        config=OmegaConf.to_container(cfg, resolve=True),
        inferer=build_inferer(spec, model),
        nonfinite=NonFiniteGuard(spec.nonfinite) if nonfinite is None else nonfinite,
        channels_last=spec.performance.channels_last,
        boundary=build_boundary_metric(spec, datamodule),
        mode=spec.mode,
        method=_instantiate(cfg.method),
    )


def apply_performance_options(spec: RunSpec, task: SegmentationTask, training: bool) -> None:
    """Matmul precision and compilation from the spec (its ``channels_last`` is the task's,
    from `build_task`).

    They live in ``cfg.trainer`` beside ``precision`` and ``benchmark`` (which Lightning
    applies) so that one trainer config, ``trainer=cpu`` or ``trainer=gpu``, carries the
    settings measured best for its accelerator. Compilation is for training only: an
    evaluation is too short to repay it.
    """
    performance = spec.performance
    if performance.float32_matmul_precision is not None:
        torch.set_float32_matmul_precision(performance.float32_matmul_precision)
    if training and performance.compile is not None:
        # in place: the parameters keep their names, so checkpoints load into plain models
        task.model.compile(**performance.compile)


def build_trainer(spec: RunSpec, purge_step: int | None = None) -> pl.Trainer:
    """The configured Trainer; ``purge_step`` (a resumed run's checkpoint step) makes TensorBoard
    drop what the interrupted run logged from that step on, since the resumed run logs it again.

    The progress bar refreshes every ``log_every_n_steps`` steps rather than every step: each
    refresh copies the step's loss to the host, which would stall an accelerator every step
    (a progress bar given in ``callbacks`` is used as it is).
    """
    cfg = spec.config
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    if cfg.trainer.get("enable_progress_bar", True) and not any(
        isinstance(c, ProgressBar) for c in callbacks
    ):
        interval = max(int(cfg.trainer.get("log_every_n_steps") or 1), 1)
        callbacks.append(IntervalProgressBar(refresh_rate=interval))
    pruning = pruning_callback(cfg)
    if pruning is not None:
        callbacks.append(pruning)
    loggers = []
    for key, node in (cfg.get("logger") or {}).items():
        if not node:
            continue
        target = get_class(node._target_)
        if issubclass(target, MLFlowLogger):
            require_mlflow(f"logger.{key}")
        purge = purge_step is not None and issubclass(target, TensorBoardLogger)
        loggers.append(instantiate(node, **({"purge_step": purge_step} if purge else {})))
    if not any(isinstance(logger, TensorBoardLogger) for logger in loggers):
        raise SeglabError("logger: every run logs to TensorBoard; keep logger=tensorboard")
    if any(isinstance(logger, MLFlowLogger) for logger in loggers):
        # the settings and the best checkpoint, which Lightning's logger does not record
        callbacks.append(MLflowRecord())
    quiet_lightning()
    # plain containers: Lightning reads `max_time={hours: 1}` only from a dict
    trainer = instantiate(spec.trainer, callbacks=callbacks, logger=loggers, _convert_="all")
    # a checkpoint plugin of the user's own (trainer.plugins) is kept
    if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()
    return trainer


def untrained(spec: RunSpec) -> RunSpec:
    """``spec`` without the encoder's pretrained weights: a checkpoint's own weights replace
    them, so they are neither downloaded nor read."""
    cfg = copy.deepcopy(spec.config)
    for key in ("weights", "weights_path"):
        if OmegaConf.select(cfg, f"model.encoder.{key}") is not None:
            OmegaConf.update(cfg, f"model.encoder.{key}", None)
    return replace(spec, config=cfg)


def checkpoint_model(spec: RunSpec, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """The network of ``spec`` at the channel counts of ``state`` (its weights in a checkpoint),
    which differ from the config's in a pruned run (``pruned`` in its config); not loaded."""
    model = build_model(spec)
    return shrink_to(model, state) if spec.config.get(PRUNED_KEY) else model


def trained_model(spec: RunSpec, checkpoint: dict[str, Any]) -> torch.nn.Module:
    """The network of ``spec`` with the checkpoint's weights, in eval mode: all that prediction
    and export need, without the run's data or loss."""
    state = model_state(checkpoint)
    model = checkpoint_model(untrained(spec), state)
    model.load_state_dict(state)
    return model.eval()
