"""The LightningModule that trains, validates and tests a Segmenter.

The model, loss, optimizer and scheduler arrive already built (or as partials) from
``seglab.workflows.build``, so the task holds no knowledge of configs: it only runs steps,
accumulates the counts of its task mode (`seglab.task_modes`) per evaluation split and logs what
it derives from them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from seglab.data.metadata import Batch
from seglab.engine.checkpoints import CHECKPOINT_KEY
from seglab.engine.nonfinite import NonFiniteGuard, TrainingStep
from seglab.inference.inferer import Inferer
from seglab.methods import Supervised, TrainingMethod
from seglab.metrics.boundary import BoundaryMetric
from seglab.models.layers import resize
from seglab.task_modes import Multiclass, TaskMode


class SegmentationTask(pl.LightningModule):
    """Supervised per-pixel classification with dataset-level IoU/Dice metrics.

    Args:
        model: maps images ``(N, 3, H, W)`` to logits ``(N, C, H, W)``; a model with
            ``aux_weight > 0`` also has ``forward_with_aux``, whose auxiliary logits add
            ``aux_weight`` times their mean loss to the training loss (logged as
            ``train/loss/aux``).
        loss: maps ``(logits, target)`` to a scalar; a loss with ``last_terms`` also gets
            each term logged.
        optimizer: partial taking ``params``.
        scheduler: partial taking ``optimizer`` and ``total_steps``, stepped every optimizer
            step; None keeps the learning rate constant.
        classes: class names, in index order, used in the per-class metric names.
        ignore_index: target value of void pixels, left out of the metrics.
        config: the resolved run configuration, stored in every checkpoint so that a
            checkpoint alone rebuilds its model and data.
        inferer: how validation and test images run through ``model`` (sliding windows,
            test-time augmentation; ``seglab.inference.inferer.Inferer`` around this same model);
            None runs them whole, as training does.
        nonfinite: what a NaN or infinite training loss does (``on_nonfinite``); None stops
            the run. The task checks the pending losses before anything is validated or saved,
            and lets them gather for ``log_every_n_steps`` steps (when Lightning reads the
            logged values too), so that a GPU never waits for one step's loss.
        channels_last: put the model's weights, and the images it is given, in NHWC memory
            format (``trainer.channels_last``), which convolutions of recent CPUs and GPUs
            run faster.
        boundary: the split's boundary metrics (Boundary IoU, and HD95 if it asks for it),
            copied for validation and test; None computes none.
        mode: what a pixel's label is (``mode``): how logits become the labels the metrics
            count, and which counts those are; multiclass when None.
        method: how training batches become the loss (`seglab.methods`); None is
            `Supervised`. The method's own networks (a teacher) are part of the task's state.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module,
        optimizer: Callable[..., Optimizer],
        scheduler: Callable[..., LRScheduler] | None,
        classes: Sequence[str],
        ignore_index: int,
        config: dict[str, Any] | None = None,
        inferer: Inferer | None = None,
        nonfinite: NonFiniteGuard | None = None,
        channels_last: bool = False,
        boundary: BoundaryMetric | None = None,
        mode: TaskMode | None = None,
        method: TrainingMethod | None = None,
    ) -> None:
        super().__init__()
        if channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model
        self.method = Supervised() if method is None else method
        self.method.bind(model)
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.classes = list(classes)
        self.config = config
        self.inferer = inferer
        self.nonfinite = NonFiniteGuard() if nonfinite is None else nonfinite
        self.channels_last = channels_last
        self.mode = Multiclass() if mode is None else mode
        # accumulated over an evaluation epoch, per stage
        self.confusion_metrics = nn.ModuleDict(
            {stage: self.mode.metric(len(self.classes), ignore_index) for stage in ("val", "test")}
        )
        self.boundary_metrics = nn.ModuleDict(
            {} if boundary is None else {stage: boundary.clone() for stage in ("val", "test")}
        )
        # results of the last finished evaluation epoch, per stage: read by callbacks and eval
        self.scores: dict[str, dict[str, Tensor]] = {}
        self.last_confusion: dict[str, Tensor] = {}
        self.best: dict[str, float] = {}

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images)

    def in_model_format(self, images: Tensor) -> Tensor:
        """Images in the model's memory format (a no-op when they already are)."""
        if self.channels_last:
            return images.contiguous(memory_format=torch.channels_last)
        return images

    def supervised_loss(
        self, images: Tensor, masks: Tensor, model: nn.Module | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The loss of ``model`` (the task's by default) on labelled images, and the terms
        logged beside it under their full names (``train/loss/<term>``)."""
        model = self.model if model is None else model
        images = self.in_model_format(images)
        aux_weight = float(getattr(model, "aux_weight", 0.0))
        if aux_weight > 0:
            logits, aux_logits = model.forward_with_aux(images)
        else:
            logits, aux_logits = model(images), []
        loss = self.loss(logits, masks)
        # read before the auxiliary losses overwrite them
        terms = dict(getattr(self.loss, "last_terms", {}))
        if aux_logits:
            aux_loss = torch.stack([self.loss(aux, masks) for aux in aux_logits]).mean()
            terms["aux"] = aux_loss.detach()
            loss = loss + aux_weight * aux_loss
        return loss, {f"train/loss/{name}": value for name, value in terms.items()}

    def training_step(self, batch: Any, batch_idx: int) -> Tensor | None:
        loss, terms, n, names = self.method.training_step(self, batch)
        origin = TrainingStep(self.global_step, self.current_epoch, batch_idx, names)
        if not self.nonfinite.admit(loss, origin, self.trainer.log_every_n_steps):
            return None
        # not prog_bar: Lightning would copy it to the host every step (IntervalProgressBar)
        self.log("train/loss", loss, on_step=True, on_epoch=False, batch_size=n)
        # epoch values average over every process of a distributed run (sync_dist)
        self.log(
            "train/loss_epoch", loss, on_step=False, on_epoch=True, batch_size=n, sync_dist=True
        )
        for name, value in terms.items():
            self.log(
                name,
                value,
                on_step=False,
                on_epoch=True,
                batch_size=n,
                sync_dist=True,
            )
        return loss

    def on_train_start(self) -> None:
        self.method.on_train_start(self)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.method.on_train_batch_end(self)

    def on_train_end(self) -> None:
        self.nonfinite.check()

    def _evaluation_step(self, stage: str, batch: Batch) -> None:
        images, masks, _ = batch
        images = self.in_model_format(images)
        logits = self(images) if self.inferer is None else self.inferer.logits(images)
        # data configs may run the model below the labels' resolution (data.eval_scale); the
        # metrics are still those of the labels, so the logits, not the masks, are resampled,
        # and before the labels are taken
        logits = resize(logits, masks.shape[-2:])
        loss = self.loss(logits, masks)
        self.log(
            f"{stage}/loss",
            loss,
            on_epoch=True,
            prog_bar=stage == "val",
            batch_size=images.shape[0],
            sync_dist=True,
        )
        preds = self.mode.labels(logits)
        self.confusion_metrics[stage].update(preds, masks)
        if stage in self.boundary_metrics:
            self.boundary_metrics[stage].update(preds, masks)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluation_step("val", batch)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluation_step("test", batch)

    def on_validation_epoch_start(self) -> None:
        # no metric, and so no best checkpoint, from weights a non-finite loss has spoilt
        self.nonfinite.check()
        self.confusion_metrics["val"].reset()
        self._reset_boundary("val")

    def on_test_epoch_start(self) -> None:
        self.confusion_metrics["test"].reset()
        self._reset_boundary("test")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_scores("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_scores("test")

    def _log_epoch_scores(self, stage: str) -> None:
        """Derive every metric from the split's counts (one confusion matrix, or one per class
        in multilabel mode), once per epoch."""
        confmat = self.confusion_metrics[stage].compute()
        self.confusion_metrics[stage].reset()
        scores = self.mode.scores(confmat)
        if stage in self.boundary_metrics:
            scores |= self.boundary_metrics[stage].compute()
            self._reset_boundary(stage)
        self.last_confusion[stage] = confmat.detach().cpu()
        self.scores[stage] = {k: v.detach().cpu() for k, v in scores.items()}
        # the confusion matrix is already summed over every process, so scores agree on all
        self.log(f"{stage}/mIoU", scores["mIoU"], prog_bar=True, sync_dist=True)
        logged = {f"{stage}/{k}": scores[k] for k in ("mDice", "pixel_accuracy")}
        for i, name in enumerate(self.classes):
            # a class absent from the split has no IoU; a NaN point would only break the curve
            # per class in groups of their own (val_IoU/, val_Dice/), out of the val/ headline
            if bool(scores["present"][i]):
                logged[f"{stage}_IoU/{name}"] = scores["IoU"][i]
                logged[f"{stage}_Dice/{name}"] = scores["Dice"][i]
        logged |= self._boundary_logs(stage, scores)
        if stage == "val" and not self.trainer.sanity_checking:
            for key in ("mIoU", "mDice"):
                value = float(scores[key])
                if not math.isnan(value):
                    self.best[key] = max(self.best.get(key, -math.inf), value)
                if key in self.best:
                    logged[f"val/{key}_best"] = torch.tensor(self.best[key])
        self.log_dict(logged, sync_dist=True)

    def _reset_boundary(self, stage: str) -> None:
        if stage in self.boundary_metrics:
            self.boundary_metrics[stage].reset()

    def _boundary_logs(self, stage: str, scores: dict[str, Tensor]) -> dict[str, Tensor]:
        """The boundary means under ``<stage>/``, and each class's values that exist in groups of
        their own (``val_BoundaryIoU/``, ``val_HD95/``) as the per-class IoUs are."""
        logged = {}
        for name in ("BoundaryIoU", "HD95"):
            if name not in scores:
                continue
            logged[f"{stage}/m{name}"] = scores[f"m{name}"]
            values = scores[name]
            for i, class_name in enumerate(self.classes):
                if not math.isnan(float(values[i])):
                    logged[f"{stage}_{name}/{class_name}"] = values[i]
        return logged

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        total_steps = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(optimizer=optimizer, total_steps=total_steps)
        return {
            "optimizer": optimizer,
            # the name LearningRateMonitor logs the rate under, at the logging interval
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "name": "train/lr"},
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # raised here, the error leaves the checkpoint on disk as it was
        self.nonfinite.check()
        checkpoint[CHECKPOINT_KEY] = {
            "config": self.config,
            "classes": self.classes,
            "best": dict(self.best),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.best = dict(checkpoint.get(CHECKPOINT_KEY, {}).get("best", {}))
