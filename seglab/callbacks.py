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
from PIL import Image, ImageDraw, ImageFont
from pytorch_lightning.callbacks import TQDMProgressBar
from pytorch_lightning.loggers import TensorBoardLogger
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import metadata, plugin_data_pb2
from tensorboard.plugins.hparams.api_pb2 import Status
from tensorboard.plugins.hparams.summary_v2 import hparams_pb
from torch import Tensor
from torchvision.transforms.functional import pil_to_tensor
from torchvision.utils import make_grid

from seglab.data.base import Batch
from seglab.models.layers import resize
from seglab.runs import group_choices
from seglab.task import SegmentationTask

VOID_COLOUR = (0, 0, 0)


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


def colourize(mask: Tensor, palette: list[list[int]], ignore_index: int) -> Tensor:
    """Class-index mask ``(H, W)`` to an RGB float image ``(3, H, W)``; void is black."""
    lut = torch.tensor(palette, dtype=torch.float32) / 255.0
    valid = (mask >= 0) & (mask < len(palette)) & (mask != ignore_index)
    rgb = lut[torch.where(valid, mask, 0)]
    rgb[~valid] = torch.tensor(VOID_COLOUR, dtype=torch.float32)
    return rgb.permute(2, 0, 1)


class PredictionGrid(pl.Callback):
    """Input / ground truth / prediction for the same val images at every validation epoch.

    Args:
        num_samples: how many of the first val images to draw (fixed, so epochs compare).
    """

    def __init__(self, num_samples: int = 4) -> None:
        if num_samples < 1:
            raise ValueError(f"callbacks.prediction_grid.num_samples={num_samples} must be >= 1")
        self.num_samples = num_samples
        self._batch: Batch | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        writer = _writer(trainer)
        if writer is None or trainer.sanity_checking:
            return
        datamodule = trainer.datamodule
        if self._batch is None:
            dataset = datamodule.dataset("val")
            samples = [dataset[i] for i in range(min(self.num_samples, len(dataset)))]
            self._batch = datamodule.collate_fn(samples)
        images, masks, _ = self._batch
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            logits = pl_module(images.to(pl_module.device))
            predictions = resize(logits, masks.shape[-2:]).argmax(1).cpu()
        pl_module.train(was_training)
        # images may run below the labels' resolution (data.eval_scale); draw all at the latter
        images = resize(images, masks.shape[-2:])
        tiles = []
        for image, mask, prediction in zip(
            datamodule.denormalize(images).clamp(0, 1), masks, predictions, strict=True
        ):
            tiles.append(image[:3].float() if image.shape[0] >= 3 else image.expand(3, -1, -1))
            tiles.append(colourize(mask, datamodule.palette, datamodule.ignore_index))
            tiles.append(colourize(prediction, datamodule.palette, datamodule.ignore_index))
        grid = make_grid(tiles, nrow=3, padding=2, pad_value=1.0)
        writer.add_image("val/predictions", grid, _validation_step(trainer))


def draw_confusion_matrix(confmat: Tensor, classes: list[str], cell: int = 34) -> Image.Image:
    """Row-normalised confusion matrix (rows: truth, columns: prediction) as a labelled image."""
    counts = confmat.double()
    totals = counts.sum(dim=1, keepdim=True)
    rates = torch.where(totals > 0, counts / totals.clamp(min=1), torch.zeros_like(counts))
    font = ImageFont.load_default()
    margin = 8 + max(int(font.getlength(name)) for name in classes)
    n = len(classes)
    size = margin + n * cell + 4
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    for i, name in enumerate(classes):
        draw.text((4, margin + i * cell + cell // 3), name, fill="black", font=font)
        draw.text((margin + i * cell + 2, 4 + (i % 2) * 12), name[:5], fill="black", font=font)
    for i in range(n):
        for j in range(n):
            rate = float(rates[i, j])
            shade = (int(255 * (1 - rate)), int(255 * (1 - 0.7 * rate)), 255)
            x0, y0 = margin + j * cell, margin + i * cell
            draw.rectangle((x0, y0, x0 + cell - 1, y0 + cell - 1), fill=shade, outline="grey")
            if rate > 0:
                ink = "white" if rate > 0.5 else "black"
                draw.text((x0 + 3, y0 + cell // 3), f"{rate:.2f}", fill=ink, font=font)
    return image


class ConfusionMatrixImage(pl.Callback):
    """The val split's row-normalised confusion matrix as an image, every validation epoch."""

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        writer = _writer(trainer)
        if writer is None or trainer.sanity_checking:
            return
        assert isinstance(pl_module, SegmentationTask)
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


#: Config nodes about where and how a run is recorded, resumed or run by Hydra, never about
#: what it computes: they are no HPARAMS column.
NOT_COMPARED = (
    "callbacks",
    "logger",
    "paths",
    "hydra",
    "task_name",
    "ckpt_path",
    "resume",
    "trusted_targets",
    "optimized_metric",
)


def hparam_values(config: dict[str, Any], choices: dict[str, str]) -> dict[str, Any]:
    """The settings of a run that the HPARAMS tab compares across runs.

    A swapped config group is one value, its option's name (``model/decoder: fpn``), in place
    of the class path its ``_target_`` holds; any other ``_target_`` is shown by its class name.
    Hydra's ``_convert_``-style instructions and the nodes of `NOT_COMPARED` are left out, and
    so is any value naming the run's own directory.

    Args:
        config: the run's resolved config.
        choices: the option picked in each config group (``hydra.runtime.choices``).
    """
    values: dict[str, Any] = {
        group: option
        for group, option in choices.items()
        if group.split("/")[0] not in NOT_COMPARED
    }
    swapped = {group.replace("/", ".") + "._target_" for group in values}
    output_dir = str((config.get("paths") or {}).get("output_dir") or "") or None
    kept = {key: value for key, value in config.items() if key not in NOT_COMPARED}
    for key, value in flatten_config(kept).items():
        name = key.rsplit(".", 1)[-1]
        if key in swapped or (name.startswith("_") and name != "_target_"):
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
