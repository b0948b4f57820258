"""TensorBoard reporting that Lightning's scalar logging does not cover.

Each callback reads what ``SegmentationTask`` computed for the epoch (its confusion matrix,
its config) and draws or writes it; none of them recomputes a metric.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import TQDMProgressBar
from pytorch_lightning.loggers import TensorBoardLogger
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import metadata, plugin_data_pb2
from tensorboard.plugins.hparams.api_pb2 import Status
from tensorboard.plugins.hparams.summary_v2 import hparams_pb
from torch import Tensor
from torchvision.transforms.functional import pil_to_tensor

from seglab.config.keys import is_hparam
from seglab.data.metadata import Sample
from seglab.engine.task import SegmentationTask
from seglab.models.layers import resize
from seglab.runs.directories import group_choices
from seglab.visualization.figures import draw_confusion_matrix, draw_prediction_grid, spread_indices


def _writer(trainer: pl.Trainer) -> Any | None:
    """The SummaryWriter of the run's TensorBoard logger, on the main process only."""
    if not trainer.is_global_zero:
        return None
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None


def _validation_step(trainer: pl.Trainer) -> int:
    """The step Lightning logs the epoch's val scalars at (its last training batch's), so that
    images sit beside them and a resumed run's TensorBoard purge (from the checkpoint's
    global step on) keeps the last finished epoch's images."""
    return max(trainer.global_step - 1, 0)


class PredictionGrid(pl.Callback):
    """Image, truth, prediction and error map of the same val images at every validation epoch,
    under column headings and over a legend of the class colours (`draw_prediction_grid`).

    A multilabel run (``mode``), whose pixels have any number of classes, draws none.

    Args:
        num_samples: how many val images to draw, spread evenly over the split (a video
            split's first frames are one scene) and the same for the whole run, so that
            epochs compare.
        min_tile: small images are enlarged by a whole factor (nearest-neighbour) until their
            longer side has at least this many pixels.
        max_width: the grid's widest, in pixels (a TensorBoard card's width); larger images
            are reduced to fit it.
    """

    def __init__(self, num_samples: int = 4, min_tile: int = 128, max_width: int = 1100) -> None:
        for key, value, least in (
            ("num_samples", num_samples, 1),
            ("min_tile", min_tile, 1),
            ("max_width", max_width, 64),
        ):
            if value < least:
                raise ValueError(f"callbacks.prediction_grid.{key}={value} must be >= {least}")
        self.num_samples = num_samples
        self.min_tile = min_tile
        self.max_width = max_width
        self._samples: list[Sample] | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        writer = _writer(trainer)
        assert isinstance(pl_module, SegmentationTask)
        if writer is None or trainer.sanity_checking or pl_module.mode.class_axis:
            return
        datamodule = trainer.datamodule
        if self._samples is None:
            dataset = datamodule.dataset("val")
            self._samples = [dataset[i] for i in spread_indices(self.num_samples, len(dataset))]
        was_training = pl_module.training
        pl_module.eval()
        drawn = []
        with torch.no_grad():
            # one at a time: val images may differ in size, and a padded batch would draw
            # its padding
            for image, mask, _ in self._samples:
                images = pl_module.in_model_format(image[None].to(pl_module.device))
                logits = (
                    pl_module(images)
                    if pl_module.inferer is None
                    else (pl_module.inferer.logits(images))
                )
                prediction = pl_module.mode.labels(resize(logits, mask.shape[-2:]))[0].cpu()
                # images may run below the labels' resolution (data.eval_scale); draw all
                # at the latter
                shown = datamodule.denormalize(resize(image[None], mask.shape[-2:]))[0]
                shown = shown[:3].float() if shown.shape[0] >= 3 else shown[:1].expand(3, -1, -1)
                drawn.append((shown, mask, prediction))
        pl_module.train(was_training)
        grid = draw_prediction_grid(
            drawn,
            datamodule.classes,
            datamodule.palette,
            datamodule.ignore_index,
            min_tile=self.min_tile,
            max_width=self.max_width,
        )
        writer.add_image("val/predictions", pil_to_tensor(grid), _validation_step(trainer))


class ConfusionMatrixImage(pl.Callback):
    """The val split's row-normalised confusion matrix as an image, every validation epoch
    (`draw_confusion_matrix`); a multilabel run (``mode``) has one per class and draws none."""

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        writer = _writer(trainer)
        assert isinstance(pl_module, SegmentationTask)
        if writer is None or trainer.sanity_checking or pl_module.mode.class_axis:
            return
        confmat = pl_module.last_confusion.get("val")
        if confmat is None:
            return
        image = draw_confusion_matrix(confmat, pl_module.classes)
        writer.add_image("val/confusion_matrix", pil_to_tensor(image), _validation_step(trainer))


def flatten_config(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys to values TensorBoard's HPARAMS tab accepts (numbers, strings, bools)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_config(value, f"{name}."))
        elif isinstance(value, bool | str) or (
            isinstance(value, int | float) and math.isfinite(value)
        ):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


def hparam_values(config: dict[str, Any], choices: dict[str, str]) -> dict[str, Any]:
    """The settings of a run that the HPARAMS tab compares across runs.

    A swapped config group is one value, its option's name (``model/decoder: fpn``), in place
    of the class path its ``_target_`` holds; any other ``_target_`` is shown by its class name.
    Hydra's ``_convert_``-style instructions, the keys `seglab.config.keys.is_hparam` refuses
    (where a run is recorded, how fast it goes) and any value naming the run's own directory are
    left out.

    Args:
        config: the run's resolved config.
        choices: the option picked in each config group (``hydra.runtime.choices``).
    """
    values: dict[str, Any] = {
        group: option for group, option in choices.items() if is_hparam(group)
    }
    swapped = {group.replace("/", ".") + "._target_" for group in values}
    output_dir = str((config.get("paths") or {}).get("output_dir") or "") or None
    for key, value in flatten_config(config).items():
        name = key.rsplit(".", 1)[-1]
        if not is_hparam(key) or key in swapped or (name.startswith("_") and name != "_target_"):
            continue
        if output_dir and isinstance(value, str) and output_dir in value:
            continue
        # any other target (a term of a combined loss...) by its class name, which fits a column
        values[key] = value.rsplit(".", 1)[-1] if name == "_target_" else value
    return values


def _session_end(status: int) -> Summary:
    """The summary that marks a run's HPARAMS session finished, with its status."""
    data = plugin_data_pb2.HParamsPluginData(
        session_end_info=plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=time.time())
    )
    summary = Summary()
    summary.value.add(
        tag=metadata.SESSION_END_INFO_TAG,
        metadata=metadata.create_summary_metadata(data),
        tensor=metadata.NULL_TENSOR,
    )
    return summary


class RunSummary(pl.Callback):
    """Writes the run's config as text and its settings to the HPARAMS tab.

    Only the session of the run is written, never an HPARAMS experiment: TensorBoard then
    builds the experiment from every run below its logdir, so that every setting of every run
    is a column and the settings that differ between the runs come first. The metric columns
    are the scalars the runs log (``val/mIoU_best``, ``val/mDice_best``, ``val/loss``,
    ``test/mIoU``...), each at its last value.
    """

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        writer = _writer(trainer)
        if writer is None:
            return
        config = getattr(pl_module, "config", None) or {}
        text = OmegaConf.to_yaml(OmegaConf.create(config))
        writer.add_text("config", "\n".join("    " + line for line in text.splitlines()))
        run_dir = (config.get("paths") or {}).get("output_dir")
        choices = group_choices(run_dir) if run_dir else {}
        # the table's trial id: the run directory's name, which is also the run's (short) name
        trial = Path(run_dir).name if run_dir else None
        start = hparams_pb(hparam_values(config, choices), trial_id=trial)
        writer._get_file_writer().add_summary(start)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._end(trainer, Status.STATUS_SUCCESS)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._end(trainer, Status.STATUS_FAILURE)

    def _end(self, trainer: pl.Trainer, status: int) -> None:
        writer = _writer(trainer)
        if writer is not None:
            writer._get_file_writer().add_summary(_session_end(status))


#: The CUSTOM SCALARS tab's charts: ``{category: {chart: ["Multiline", [tag regexes]]}}``.
HEADLINE_LAYOUT = {
    "headline": {
        "val/mIoU": ["Multiline", [r"^val/mIoU$", r"^val/mIoU_best$"]],
        "loss (train and val)": ["Multiline", [r"^train/loss$", r"^val/loss$"]],
        "val/mDice": ["Multiline", [r"^val/mDice$", r"^val/mDice_best$"]],
        "val IoU per class": ["Multiline", [r"^val_IoU/"]],
    }
}


class HeadlineCharts(pl.Callback):
    """The CUSTOM SCALARS tab's layout: the numbers a run is judged by, first and together.

    The SCALARS and TIME SERIES tabs group charts by the part of a tag before its first ``/``
    and sort the groups by name, so ``epoch``, ``test`` and ``train`` come before ``val``. Every
    run writes the same layout once; TensorBoard merges those of all runs into one.
    """

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        writer = _writer(trainer)
        if writer is not None:
            writer.add_custom_scalars(HEADLINE_LAYOUT)


class IntervalProgressBar(TQDMProgressBar):
    """Lightning's TQDM bar that shows the training loss without reading it every step.

    Lightning turns every ``prog_bar`` value into a Python number after every step, a host
    synchronisation that stalls an accelerator; so the task logs ``train/loss`` for the logger
    only, and this bar reads it from the callback metrics when it refreshes, every
    ``refresh_rate`` steps (``build_trainer`` sets ``trainer.log_every_n_steps``).
    """

    def __init__(self, refresh_rate: int = 1, keys: tuple[str, ...] = ("train/loss",)) -> None:
        super().__init__(refresh_rate=refresh_rate)
        self.keys = keys

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        for key in self.keys:
            value = trainer.callback_metrics.get(key)
            if isinstance(value, Tensor) and value.numel() == 1:
                items[key] = f"{value.item():.3g}"
        return items
