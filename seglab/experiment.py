"""The one place where a configuration becomes objects, for training and evaluation alike.

Entry points (``seglab.train``, ``seglab.eval``) and scripts call these builders, so a
config means the same thing everywhere and a checkpoint's stored config rebuilds its run.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import pickle
import platform
import re
import shutil
import socket
import subprocess
import sys
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import get_class, instantiate
from lightning_fabric.plugins import TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.callbacks import ProgressBar
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from seglab.callbacks import IntervalProgressBar
from seglab.checkpoints import AtomicCheckpointIO, CheckpointWriteError
from seglab.data import DatasetError, SegmentationDataModule
from seglab.data.stats import class_statistics
from seglab.inference import Inferer
from seglab.runs import fallback_checkpoint, resume_checkpoint, resumed_run_dir
from seglab.tables import text_table
from seglab.task import CHECKPOINT_KEY, NONFINITE_ACTIONS, NonFiniteLossError, SegmentationTask

log = logging.getLogger(__name__)
# the value of a loss's `class_weights` that asks for weights computed from the train split
MEDIAN_FREQUENCY = "median_frequency"


class SeglabError(Exception):
    """A problem with the user's input, reported as one line without a traceback."""


class UnreadableCheckpointError(SeglabError):
    """A checkpoint file that is truncated or otherwise not a checkpoint at all."""


class MissingCheckpointError(SeglabError):
    """A checkpoint path with no file."""


def _instantiate(node: DictConfig) -> Any:
    """``instantiate(node)``, with a constructor's refusal of a value as one-line SeglabError."""
    try:
        return instantiate(node)
    except InstantiationException as error:
        reported = _instantiation_error(error)
        if reported is None:
            raise
        raise reported from None


def _instantiation_error(error: InstantiationException) -> SeglabError | None:
    """The one-line error of a constructor that refused a config value, or None for a bug.

    Constructors name the key and value in their ``ValueError``s (a missing file is a
    ``FileNotFoundError``); Hydra wraps those in a multi-line report ending with the node's
    ``full_key``, which is added when the message does not already start with it.
    """
    cause = error.__cause__
    if not isinstance(cause, ValueError | FileNotFoundError):
        return None
    message = str(cause)
    node = next(
        (line.split(":", 1)[1].strip() for line in str(error).splitlines() if "full_key:" in line),
        "",
    )
    return SeglabError(message if not node or message.startswith(node) else f"{node}: {message}")


def config_dir() -> Path:
    """``conf/`` shipped inside an installed wheel, else the one beside the package source."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "conf", package.parent / "conf"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise SeglabError(f"no conf/train.yaml found in {package} or {package.parent}")


def build_datamodule(cfg: DictConfig) -> SegmentationDataModule:
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
    return _instantiate(cfg.model)


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


def build_inferer(cfg: DictConfig, model: torch.nn.Module) -> Inferer | None:
    """The sliding-window / test-time-augmentation inference ``cfg.inference`` asks for, or
    None for whole images (also for checkpoints saved before the ``inference`` node existed).
    """
    node = cfg.get("inference")
    if node is None:
        return None
    tta = node.get("tta") or {}
    scales = list(tta.get("scales") or [1.0])
    if node.get("tile") is None and not tta.get("hflip") and scales == [1.0]:
        return None
    try:
        return Inferer(
            model,
            tile=node.get("tile"),
            overlap=node.get("overlap", 0.25),
            blend=node.get("blend", "gaussian"),
            tile_batch_size=node.get("tile_batch_size", 4),
            hflip=bool(tta.get("hflip", False)),
            scales=scales,
        )
    except ValueError as error:
        raise SeglabError(f"inference: {error}") from None


def build_task(
    cfg: DictConfig, datamodule: SegmentationDataModule, model: torch.nn.Module | None = None
) -> SegmentationTask:
    """The task of ``cfg`` around ``model`` (built from ``cfg`` when not given)."""
    cfg = resolve_class_weights(cfg, datamodule)
    scheduler = cfg.get("scheduler")
    model = build_model(cfg) if model is None else model
    return SegmentationTask(
        model=model,
        loss=instantiate(cfg.loss),
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(scheduler) if scheduler is not None else None,
        classes=datamodule.classes,
        ignore_index=datamodule.ignore_index,
        config=OmegaConf.to_container(cfg, resolve=True),
        inferer=build_inferer(cfg, model),
        # checkpoints older than the option stop, as training then did
        on_nonfinite=cfg.get("on_nonfinite", "stop"),
    )


#: ``trainer`` keys that seglab applies itself; Lightning's Trainer gets the rest.
PERFORMANCE_KEYS = ("channels_last", "compile", "float32_matmul_precision")
_MATMUL_PRECISIONS = ("highest", "high", "medium")


def lightning_trainer_config(trainer: DictConfig) -> DictConfig:
    """``cfg.trainer`` without :data:`PERFORMANCE_KEYS`, ready for ``pl.Trainer``."""
    node = copy.deepcopy(trainer)
    with open_dict(node):
        for key in PERFORMANCE_KEYS:
            node.pop(key, None)
    return node


def apply_performance_options(cfg: DictConfig, task: SegmentationTask, training: bool) -> None:
    """Memory format, compilation and matmul precision from ``cfg.trainer``.

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
    if node.get("channels_last"):
        task.channels_last = True
        task.model.to(memory_format=torch.channels_last)
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
    loggers = []
    for node in (cfg.get("logger") or {}).values():
        if not node:
            continue
        purge = purge_step is not None and issubclass(get_class(node._target_), TensorBoardLogger)
        loggers.append(instantiate(node, **({"purge_step": purge_step} if purge else {})))
    if not any(isinstance(logger, TensorBoardLogger) for logger in loggers):
        raise SeglabError("logger: every run logs to TensorBoard; keep logger=tensorboard")
    trainer = instantiate(
        lightning_trainer_config(cfg.trainer), callbacks=callbacks, logger=loggers
    )
    # a checkpoint plugin of the user's own (trainer.plugins) is kept
    if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()
    return trainer


def _check_fresh_run_dir(run_dir: Path) -> None:
    """A run never writes into another run's results."""
    taken = [name for name in ("checkpoints", "tensorboard") if (run_dir / name).exists()]
    if taken:
        raise SeglabError(
            f"run directory {run_dir} already holds {', '.join(taken)} of another run; "
            "choose a new hydra.run.dir"
        )


class SweepError(SeglabError):
    """A multirun that cannot work at all: it stops the whole sweep, not one job."""


#: Strategies whose launcher re-executes the command line for the other ranks.
_RELAUNCHING_STRATEGIES = ("ddp", "ddp_find_unused_parameters_true", "deepspeed", "fsdp")


def _check_strategy(cfg: DictConfig) -> None:
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


#: Distributions whose versions <run>/.hydra/environment.json records (absent ones are left out).
_RECORDED_PACKAGES = (
    "torch",
    "torchvision",
    "pytorch-lightning",
    "hydra-core",
    "omegaconf",
    "torchmetrics",
    "tensorboard",
    "numpy",
    "timm",
    "seglab",
)


def _git_state(source: Path) -> tuple[str | None, bool | None]:
    """Commit and dirty flag of the git checkout whose top level is ``source``, else Nones.

    Only a checkout rooted at ``source`` describes seglab's code: an installed seglab may sit
    inside some other repository (a virtual environment in a project), and a run never fails
    for want of git.
    """

    def git(*args: str) -> str | None:
        try:
            result = subprocess.run(
                ["git", "-C", str(source), *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return result.stdout.strip() if result.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != source:
        return None, None
    commit, status = git("rev-parse", "HEAD"), git("status", "--porcelain")
    return commit, None if status is None else bool(status)


@rank_zero_only
def _write_environment(record_dir: Path, seed: int) -> None:
    """``<record_dir>/environment.json`` (``<run>/.hydra/``, or ``.hydra/resume-<time>/`` of a
    resume): what the config does not say about how a run was made.

    The seed actually used (``seed: null`` takes ``PL_GLOBAL_SEED``, else 0), the code's
    commit and the package versions are what a re-run from ``.hydra/config.yaml`` needs to
    match the run exactly.
    """
    commit, dirty = _git_state(Path(__file__).resolve().parent.parent)
    versions = {}
    for name in _RECORDED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    info = {
        "seed": seed,
        "git_commit": commit,
        "git_dirty": dirty,
        "python": platform.python_version(),
        "packages": versions,
        "cuda": torch.version.cuda,
        "command": sys.argv,
        "hostname": socket.gethostname(),
        "time": datetime.now().astimezone().isoformat(timespec="microseconds"),
    }
    record_dir.mkdir(parents=True, exist_ok=True)
    (record_dir / "environment.json").write_text(json.dumps(info, indent=2) + "\n")


def _resume(cfg: DictConfig, run_dir: Path) -> tuple[DictConfig, Path, int] | None:
    """For a command that continues a run (``ckpt_path`` or ``resume``): the config stored in
    its checkpoint with this command's overrides on top, the checkpoint and its global step.

    None for a fresh run. Refuses, naming the path, whatever cannot be continued in place.
    """
    ckpt_path, resume = cfg.get("ckpt_path"), cfg.get("resume")
    path = resume_checkpoint(ckpt_path, resume)
    if path is None:
        return None
    if ckpt_path and resume:
        raise SeglabError(
            f"ckpt_path={ckpt_path} and resume={resume} both name a run to continue; give one"
        )
    fallback = fallback_checkpoint(path)
    if resume and not path.is_file() and fallback is None:
        raise SeglabError(
            f"no checkpoint to resume: {path} does not exist; resume=true works from inside a "
            "run directory of seglab-train, resume=<run dir> from anywhere"
        )
    try:
        checkpoint = load_checkpoint(path)
    except (UnreadableCheckpointError, MissingCheckpointError) as error:
        if fallback is None:
            raise
        checkpoint = load_checkpoint(fallback)
        log.warning(
            "%s; resuming from %s instead (epoch %d): the epochs after it are trained again",
            error,
            fallback,
            checkpoint["epoch"],
        )
        path = fallback
    owner = resumed_run_dir(ckpt_path, resume)
    if owner is None:
        raise SeglabError(
            f"ckpt_path={path} is not in a run's checkpoints/ folder; seglab-train continues "
            "the run that saved it: give <run>/checkpoints/last.ckpt"
        )
    if owner.resolve() != run_dir.resolve():
        raise SeglabError(
            f"ckpt_path={path} continues run {owner}, but this job writes to {run_dir}; "
            "resume as a single run, without -m or hydra.run.dir"
        )
    trained_in = OmegaConf.select(
        OmegaConf.create(checkpoint[CHECKPOINT_KEY]["config"]), "paths.output_dir"
    )
    if trained_in and Path(trained_in).resolve() != owner.resolve():
        raise SeglabError(
            f"{path} was saved by the run in {trained_in}, where its config writes checkpoints "
            f"and logs; move {owner} back there to resume it"
        )
    config = checkpoint_config(checkpoint, cfg, list(HydraConfig.get().overrides.task))
    config.ckpt_path, config.resume = ckpt_path, resume
    epochs_done = checkpoint["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"]
    max_epochs = config.trainer.get("max_epochs")
    if max_epochs not in (None, -1) and epochs_done >= max_epochs:
        raise SeglabError(
            f"run {owner} already finished its trainer.max_epochs={max_epochs} epochs ({path}); "
            "nothing to resume; score it with seglab-eval, or train longer in a new run"
        )
    return config, path, int(checkpoint["global_step"])


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit, then test the best checkpoint; returns the final metrics (for sweepers too)."""
    run_dir = Path(cfg.paths.output_dir)
    _check_strategy(cfg)
    # .hydra/ of a fresh run, .hydra/resume-<time>/ of a resume (conf/hydra/default.yaml)
    record_dir = run_dir / (HydraConfig.get().output_subdir or ".hydra")
    try:
        resumed = _resume(cfg, run_dir)
    except SeglabError:
        # a refused resume leaves the run as it was: no record of a command that did nothing
        if record_dir.parent == run_dir / ".hydra" and record_dir.name.startswith("resume-"):
            shutil.rmtree(record_dir, ignore_errors=True)
        raise
    if resumed is not None:
        cfg = resumed[0]
    on_nonfinite = cfg.get("on_nonfinite", "stop")
    if on_nonfinite not in NONFINITE_ACTIONS:
        raise SeglabError(
            f"on_nonfinite={on_nonfinite} must be one of: {', '.join(NONFINITE_ACTIONS)}"
        )
    # other ranks of a distributed run join rank 0's directory (Lightning pins them to it)
    if rank_zero_only.rank == 0:
        if resumed is None:
            _check_fresh_run_dir(run_dir)
        record_dir.mkdir(parents=True, exist_ok=True)
        # .hydra/config.yaml keeps ${now:} and ${oc.env:} unresolved; this copy is what ran
        OmegaConf.save(cfg, record_dir / "config_resolved.yaml", resolve=True)
    seed = pl.seed_everything(cfg.seed, workers=True)
    if rank_zero_only.rank == 0:  # other ranks are relaunched with hydra.output_subdir=null
        _write_environment(record_dir, seed)
    # every check of the config comes before the first file is read
    datamodule = build_datamodule(cfg)
    model = build_model(cfg)
    check_training_size(datamodule, model)
    trainer = build_trainer(cfg, purge_step=resumed[2] if resumed else None)
    if on_nonfinite == "skip" and trainer.world_size > 1:
        raise SeglabError(
            f"on_nonfinite=skip runs on one device only ({trainer.world_size} processes here): "
            "Lightning cannot skip a batch on some processes of a distributed run; use "
            "on_nonfinite=stop"
        )
    setup_data(datamodule, "fit")
    task = build_task(cfg, datamodule, model)
    apply_performance_options(cfg, task, training=True)
    # a resume restores weights, optimizer, scheduler, loops and callbacks (best.ckpt's score)
    try:
        trainer.fit(
            task,
            datamodule=datamodule,
            ckpt_path=resumed[1] if resumed else None,
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
    missing_test = datamodule.split_unavailable("test")
    if cfg.get("test_after_fit") and not trainer.interrupted and missing_test is not None:
        log.warning("skipping the test phase after fit: %s", missing_test)
    elif cfg.get("test_after_fit") and not trainer.interrupted:
        setup_data(datamodule, "test")
        # the checkpoint callback that ranks by a metric (the other one keeps last.ckpt)
        ranking = [c for c in trainer.checkpoint_callbacks if getattr(c, "monitor", None)]
        best = ranking[0].best_model_path if ranking else ""
        trainer.test(task, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
        metrics.update(
            {
                name: float(value)
                for name, value in trainer.callback_metrics.items()
                if name.startswith("test/") and value.numel() == 1
            }
        )
    return metrics


def _worker_message(error: Exception) -> str:
    """The message of an error, without the traceback a dataloader worker wraps it in."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Caught "):
        # the last line is "<module>.<ErrorType>: <message>"
        return lines[-1].split(": ", 1)[-1]
    return str(error)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a seglab checkpoint without running any pickled code in it."""
    path = Path(path)
    if not path.is_file():
        raise MissingCheckpointError(f"ckpt_path={path} does not exist")
    try:
        # plain data and tensors only: a pickled object that would run code is refused unrun
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch names what the file asked to import as "GLOBAL <module>.<name>"
        named = re.search(r"GLOBAL (\S+)", str(error))
        reason = f"it refers to {named.group(1).rstrip('.')}" if named else "it is not plain data"
        raise SeglabError(
            f"ckpt_path={path} holds pickled objects that are not tensors or plain data "
            f"({reason}), and seglab does not run code from a checkpoint; use a checkpoint "
            "written by seglab-train, and load this one with torch.load(weights_only=False) "
            "only if you trust its source"
        ) from None
    except Exception as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise UnreadableCheckpointError(
            f"ckpt_path={path} is not a loadable checkpoint ({type(error).__name__}: {first_line})"
        ) from None
    if not isinstance(checkpoint, dict) or CHECKPOINT_KEY not in checkpoint:
        raise SeglabError(
            f"ckpt_path={path} is not a seglab checkpoint (it has no '{CHECKPOINT_KEY}' entry); "
            "use a file from <run>/checkpoints/"
        )
    if not checkpoint[CHECKPOINT_KEY].get("config"):
        raise SeglabError(f"ckpt_path={path} carries no run configuration")
    return checkpoint


def load_model(path: str | Path) -> tuple[torch.nn.Module, DictConfig]:
    """The network of a seglab checkpoint with its trained weights, in eval mode, and its run
    config: all that prediction and export need, without the run's data or loss.
    """
    checkpoint = load_checkpoint(path)
    config = OmegaConf.create(checkpoint[CHECKPOINT_KEY]["config"])
    # the checkpoint's weights replace the pretrained ones: neither download nor read them
    untrained = copy.deepcopy(config)
    for key in ("weights", "weights_path"):
        if OmegaConf.select(untrained, f"model.encoder.{key}") is not None:
            OmegaConf.update(untrained, f"model.encoder.{key}", None)
    model = build_model(untrained)
    prefix = "model."
    model.load_state_dict(
        {
            key.removeprefix(prefix): value
            for key, value in checkpoint["state_dict"].items()
            if key.startswith(prefix)
        }
    )
    return model.eval(), config


def checkpoint_config(
    checkpoint: dict[str, Any], cfg: DictConfig, overrides: list[str]
) -> DictConfig:
    """The checkpoint's run config with the user's command-line overrides applied on top.

    ``cfg`` is the composed eval config, in which Hydra already applied ``overrides``;
    each override copies its resulting value (or, for a config group such as ``data=...``,
    the whole selected node) from there into the checkpoint's config.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    stored = OmegaConf.create(checkpoint[CHECKPOINT_KEY]["config"])
    groups = config_dir()
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        if key.split(".")[0] in {"ckpt_path", "resume", "split", "task_name", "hydra", "paths"}:
            continue
        target = key.replace("/", ".") if (groups / key).is_dir() else key
        if override.is_delete():
            parent, _, leaf = target.rpartition(".")
            node = OmegaConf.select(stored, parent) if parent else stored
            if node is not None and leaf in node:
                node.pop(leaf)
            continue
        value = OmegaConf.select(cfg, target, throw_on_missing=False)
        OmegaConf.update(stored, target, value, merge=False, force_add=True)
    stored.paths = cfg.paths
    return stored


def evaluate(cfg: DictConfig, overrides: list[str]) -> dict[str, Any]:
    """Score a checkpoint on one split; writes metrics.json to the run dir and returns it."""
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise SeglabError(
            "ckpt_path is required: seglab-eval ckpt_path=<run>/checkpoints/best.ckpt"
        )
    if cfg.split not in ("val", "test"):
        raise SeglabError(f"split={cfg.split} is not one of: val, test")
    checkpoint = load_checkpoint(cfg.ckpt_path)
    run_cfg = checkpoint_config(checkpoint, cfg, overrides)
    datamodule = build_datamodule(run_cfg)
    missing = datamodule.split_unavailable(cfg.split)
    if missing is not None:
        raise SeglabError(f"cannot evaluate split={cfg.split}: {missing}")
    setup_data(datamodule, "validate" if cfg.split == "val" else "test")
    task = build_task(run_cfg, datamodule)
    task.load_state_dict(checkpoint["state_dict"])
    apply_performance_options(run_cfg, task, training=False)
    trainer = instantiate(
        lightning_trainer_config(run_cfg.trainer),
        default_root_dir=cfg.paths.output_dir,
        logger=False,
        callbacks=[],
        enable_checkpointing=False,
        enable_model_summary=False,
        devices=1,
    )
    if cfg.split == "val":
        trainer.validate(task, dataloaders=datamodule.val_dataloader(), verbose=False)
    else:
        trainer.test(task, dataloaders=datamodule.test_dataloader(), verbose=False)
    scores = task.scores[cfg.split]
    report = {
        "checkpoint": str(Path(cfg.ckpt_path).resolve()),
        "split": cfg.split,
        "mIoU": _number(scores["mIoU"]),
        "mDice": _number(scores["mDice"]),
        "pixel_accuracy": _number(scores["pixel_accuracy"]),
        "per_class": {
            name: {"IoU": _number(scores["IoU"][i]), "Dice": _number(scores["Dice"][i])}
            for i, name in enumerate(task.classes)
        },
    }
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _number(value: torch.Tensor) -> float | None:
    """JSON has no NaN: a class absent from the split is reported as null."""
    number = float(value)
    return None if math.isnan(number) else number


def format_report(report: dict[str, Any]) -> str:
    """Per-class table followed by the split means, as printed by ``seglab-eval``."""

    def cell(value: float | None) -> str:
        return f"{value:.4f}" if value is not None else "absent"

    rows = [
        [name, cell(values["IoU"]), cell(values["Dice"])]
        for name, values in report["per_class"].items()
    ]
    mean = [["mean", cell(report["mIoU"]), cell(report["mDice"])]]
    table = text_table(["class", "IoU", "Dice"], rows, "<>>", footer=mean)
    return f"{table}\npixel accuracy: {report['pixel_accuracy']:.4f}   split: {report['split']}"
