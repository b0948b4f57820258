"""The one place where a configuration becomes objects: datamodule, model, loss, task,
inferer and trainer, and the performance options of ``cfg.trainer``.

Every entry point and script builds through these functions, so a config means the same thing
everywhere and a checkpoint's stored config rebuilds its run.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from lightning_fabric.plugins import TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.callbacks import ProgressBar
from pytorch_lightning.loggers import MLFlowLogger, TensorBoardLogger

from seglab.compression.channel_pruning import PRUNED_KEY, shrink_to
from seglab.config.keys import PERFORMANCE_KEYS
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
from seglab.task_modes import task_mode

log = logging.getLogger(__name__)
# the value of a loss's `class_weights` that asks for weights computed from the train split
MEDIAN_FREQUENCY = "median_frequency"


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


def build_datamodule(cfg: DictConfig) -> SegmentationDataModule:
    mode = task_mode(cfg)  # a mode the data cannot have is named before the data is read
    method = str((cfg.get("method") or {}).get("_target_", "seglab.methods.Supervised"))
    try:
        modes = tuple(get_class(method).modes)
    except (ImportError, ValueError, AttributeError):
        modes = (mode.name,)  # not a seglab method: instantiating it names what is wrong
    if mode.name not in modes:
        raise SeglabError(
            f"method._target_={method} fits mode={'|'.join(modes)} only, not mode={mode.name}; "
            "use method=supervised"
        )
    datamodule = _instantiate(cfg.data)
    if not isinstance(datamodule, SegmentationDataModule):
        raise SeglabError(
            f"data._target_={cfg.data.get('_target_')} does not build a SegmentationDataModule"
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


def resolve_class_weights(cfg: DictConfig, datamodule: SegmentationDataModule) -> DictConfig:
    """``cfg`` with every ``class_weights: median_frequency`` of the loss replaced by numbers.

    The numbers then reach both the loss and the config stored in checkpoints, so that a
    checkpoint rebuilds its loss without its training data.
    """
    paths = []

    def find(node: DictConfig, path: str) -> None:
        for key in node:
            value = node.get(key)
            if isinstance(value, DictConfig):
                find(value, f"{path}.{key}")
            elif key == "class_weights" and value == MEDIAN_FREQUENCY:
                paths.append(f"{path}.{key}")

    find(cfg.loss, "loss")
    if not paths:
        return cfg
    weights = median_frequency_weights(datamodule)
    resolved = copy.deepcopy(cfg)
    for path in paths:
        OmegaConf.update(resolved, path, weights, merge=False)
    return resolved


def build_model(cfg: DictConfig) -> torch.nn.Module:
    """The network of ``cfg``, its head with the channels of the task mode (one for binary,
    one per class otherwise)."""
    mode = task_mode(cfg)
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
    return _instantiate(cfg.model, num_classes=mode.channels(cfg.data.num_classes))


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


def build_inferer(cfg: DictConfig, model: torch.nn.Module, image_scale: float = 1.0) -> Inferer:
    """How ``model`` runs whole images (windows, test-time augmentation): ``cfg.inference``."""
    try:
        inferer = instantiate(cfg.inference, _convert_="all")
        return inferer(model, image_scale=image_scale, mode=task_mode(cfg))
    except (InstantiationException, ValueError) as error:
        cause = error.__cause__ if isinstance(error, InstantiationException) else error
        if not isinstance(cause, ValueError):
            raise
        raise SeglabError(f"inference: {cause}") from None


def build_nonfinite_guard(cfg: DictConfig) -> NonFiniteGuard:
    """What a NaN or infinite training loss does: ``cfg.on_nonfinite``."""
    try:
        return NonFiniteGuard(cfg.on_nonfinite)
    except ValueError as error:
        raise SeglabError(str(error)) from None


_BOUNDARY_KEYS = ("enabled", "dilation_ratio", "hd95")


def build_boundary_metric(
    cfg: DictConfig, datamodule: SegmentationDataModule
) -> BoundaryMetric | None:
    """The boundary metric of ``cfg.metrics.boundary``, None when it is off or the task is
    multilabel."""
    node = cfg.metrics.boundary
    unknown = sorted(set(node) - set(_BOUNDARY_KEYS))
    if unknown:
        raise SeglabError(
            f"metrics.boundary.{unknown[0]} is not an option; the options are: "
            + ", ".join(_BOUNDARY_KEYS)
        )
    if not isinstance(node.enabled, bool):
        raise SeglabError(f"metrics.boundary.enabled={node.enabled} must be true or false")
    # multilabel labels are (N, C, H, W) yes/no maps, not one class map: no boundary metric yet
    if not node.enabled or cfg.mode == "multilabel":
        return None
    try:
        return BoundaryMetric(
            len(datamodule.classes), datamodule.ignore_index, node.dilation_ratio, node.hd95
        )
    except ValueError as error:
        raise SeglabError(f"metrics.boundary.{error}") from None


def build_task(
    cfg: DictConfig,
    datamodule: SegmentationDataModule,
    model: torch.nn.Module | None = None,
    nonfinite: NonFiniteGuard | None = None,
) -> SegmentationTask:
    """The task of ``cfg`` around ``model`` and ``nonfinite`` (each built from ``cfg`` when not
    given), the model in the memory format of ``cfg.trainer.channels_last``."""
    cfg = resolve_class_weights(cfg, datamodule)
    scheduler = cfg.get("scheduler")
    model = build_model(cfg) if model is None else model
    method = _instantiate(cfg.method)
    return SegmentationTask(
        model=model,
        loss=_instantiate(cfg.loss),
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(scheduler) if scheduler is not None else None,
        classes=datamodule.classes,
        ignore_index=datamodule.ignore_index,
        config=OmegaConf.to_container(cfg, resolve=True),
        inferer=build_inferer(cfg, model),
        nonfinite=build_nonfinite_guard(cfg) if nonfinite is None else nonfinite,
        channels_last=bool(cfg.trainer.get("channels_last")),
        boundary=build_boundary_metric(cfg, datamodule),
        mode=task_mode(cfg),
        method=method,
    )


_MATMUL_PRECISIONS = ("highest", "high", "medium")


def lightning_trainer_config(trainer: DictConfig) -> DictConfig:
    """``cfg.trainer`` without :data:`PERFORMANCE_KEYS`, ready for ``pl.Trainer``."""
    node = copy.deepcopy(trainer)
    with open_dict(node):
        for key in PERFORMANCE_KEYS:
            node.pop(key, None)
    return node


def apply_performance_options(cfg: DictConfig, task: SegmentationTask, training: bool) -> None:
    """Matmul precision and compilation from ``cfg.trainer`` (its ``channels_last`` is the
    task's, from `build_task`).

    They live beside ``precision`` and ``benchmark`` (which Lightning applies) so that one
    trainer config, ``trainer=cpu`` or ``trainer=gpu``, carries the settings measured best for
    its accelerator. Compilation is for training only: an evaluation is too short to repay it.
    """
    node = cfg.trainer
    matmul = node.get("float32_matmul_precision")
    if matmul is not None:
        if matmul not in _MATMUL_PRECISIONS:
            raise SeglabError(
                f"trainer.float32_matmul_precision={matmul} is not one of: "
                f"{', '.join(_MATMUL_PRECISIONS)} (or null to leave torch's setting)"
            )
        torch.set_float32_matmul_precision(matmul)
    options = node.get("compile")
    if training and options:
        if options is not True and not isinstance(options, DictConfig | dict):
            raise SeglabError(
                f"trainer.compile={options} must be false, true, or a dict of torch.compile "
                "options such as {mode: max-autotune}"
            )
        kwargs = {} if options is True else OmegaConf.to_container(OmegaConf.create(options))
        # in place: the parameters keep their names, so checkpoints load into plain models
        task.model.compile(**kwargs)


def build_trainer(cfg: DictConfig, purge_step: int | None = None) -> pl.Trainer:
    """The configured Trainer; ``purge_step`` (a resumed run's checkpoint step) makes TensorBoard
    drop what the interrupted run logged from that step on, since the resumed run logs it again.

    The progress bar refreshes every ``log_every_n_steps`` steps rather than every step: each
    refresh copies the step's loss to the host, which would stall an accelerator every step
    (a progress bar given in ``callbacks`` is used as it is).
    """
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
    trainer = instantiate(
        lightning_trainer_config(cfg.trainer), callbacks=callbacks, logger=loggers, _convert_="all"
    )
    # a checkpoint plugin of the user's own (trainer.plugins) is kept
    if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()
    return trainer


def untrained(cfg: DictConfig) -> DictConfig:
    """``cfg`` without the encoder's pretrained weights: a checkpoint's own weights replace them,
    so they are neither downloaded nor read."""
    cfg = copy.deepcopy(cfg)
    for key in ("weights", "weights_path"):
        if OmegaConf.select(cfg, f"model.encoder.{key}") is not None:
            OmegaConf.update(cfg, f"model.encoder.{key}", None)
    return cfg


def checkpoint_model(cfg: DictConfig, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """The network of ``cfg`` at the channel counts of ``state`` (its weights in a checkpoint),
    which differ from the config's in a pruned run (``pruned`` in its config); not loaded."""
    model = build_model(cfg)
    return shrink_to(model, state) if cfg.get(PRUNED_KEY) else model


def trained_model(cfg: DictConfig, checkpoint: dict[str, Any]) -> torch.nn.Module:
    """The network of ``cfg`` with the checkpoint's weights, in eval mode: all that prediction
    and export need, without the run's data or loss."""
    state = model_state(checkpoint)
    model = checkpoint_model(untrained(cfg), state)
    model.load_state_dict(state)
    return model.eval()
