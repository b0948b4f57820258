"""Supervised training: the loss of the labelled batch, the training every run had before
methods were a choice."""

from __future__ import annotations

from seglab.data.metadata import Batch
from seglab.methods.base import StepLoss, TaskView, TrainingMethod


class Supervised(TrainingMethod):
    """Learn from labelled images only (with a labelled subset, from that subset alone)."""

    name = "supervised"

    def training_step(self, task: TaskView, batch: Batch) -> StepLoss:
        images, masks, names = batch
        loss, logged = task.supervised_loss(images, masks)
        return StepLoss(loss, logged, images.shape[0], list(names))
