"""Mean Teacher (Tarvainen and Valpola, 2017): a teacher network, the exponential moving
average of the student's weights, whose predictions on unlabelled images the student is made
consistent with."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from seglab.methods.base import (
    StepLoss,
    TaskView,
    UnlabeledMethod,
    pseudo_accuracy,
)
from seglab.methods.perturb import colour_jitter, step_generator

#: which network validates, is tested and is saved as the checkpoint's model
VALIDATED = ("teacher", "student")


def sigmoid_rampup(step: int, length: int) -> float:
    """``exp(-5 (1 - t)^2)`` with ``t = step / length`` clipped to [0, 1]: the consistency
    weight's ramp from about 0.007 to 1 over ``length`` steps; 1 throughout when 0."""
    if length <= 0:
        return 1.0
    progress = min(max(step / length, 0.0), 1.0)
    return math.exp(-5.0 * (1.0 - progress) ** 2)


def ema_decay_at(step: int, ema_decay: float) -> float:
    """The decay of the update after optimizer step ``step`` (counted from 1): ``ema_decay``,
    lower at first (``1 - 1/(step + 1)``) so that the teacher forgets its initial weights."""
    return min(ema_decay, 1.0 - 1.0 / (step + 1))


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """``teacher = decay * teacher + (1 - decay) * student``, for weights and float buffers
    (BatchNorm statistics); integer buffers (batch counts) are copied."""
    for target, source in zip(teacher.parameters(), student.parameters(), strict=True):
        target.lerp_(source, 1.0 - decay)
    for target, source in zip(teacher.buffers(), student.buffers(), strict=True):
        if target.is_floating_point():
            target.lerp_(source, 1.0 - decay)
        else:
            target.copy_(source)


class MeanTeacher(UnlabeledMethod):
    """Labelled loss of the student plus a ramped-up consistency loss: the mean squared
    difference of the student's and the teacher's class probabilities on unlabelled images.

    The teacher sees the unlabelled batch as loaded (weakly augmented), in eval mode and
    without gradient; the student sees it colour-jittered. After every optimizer step the
    teacher moves towards the student (`ema_update`). Both networks are in the task's state,
    so checkpoints hold them and a resumed run continues both.

    Args:
        ema_decay: decay of the teacher's moving average per optimizer step.
        consistency_weight: weight of the consistency loss once ramped up.
        rampup: optimizer steps of the sigmoid ramp-up of that weight (`sigmoid_rampup`).
        validate: ``teacher`` or ``student``: the network that validates, is tested and is
            saved as the checkpoint's ``model`` (what seglab-eval, seglab-predict, export and
            ``seglab.load`` read).
        unlabeled_batch_size: unlabelled images per step.
        combine: ``max_size_cycle`` or ``min_size``, as for `FixMatch`.
        jitter: strength of the student's colour jitter (factors in ``[1 - jitter,
            1 + jitter]``); 0 turns it off.
        threshold: probability from which a teacher prediction counts as confident in
            ``train/pseudo/confident_share`` (a diagnosis only).
        mean: per-channel mean the images are normalised with (the data's).
        std: per-channel standard deviation the images are normalised with (the data's).
        ignore_index: the data's void value.
        seed: seeds the jitter, with the step (the run's seed).
    """

    name = "mean_teacher"

    def __init__(
        self,
        ema_decay: float,
        consistency_weight: float,
        rampup: int,
        validate: str,
        unlabeled_batch_size: int,
        combine: str,
        jitter: float,
        threshold: float,
        mean: Sequence[float],
        std: Sequence[float],
        ignore_index: int,
        seed: int,
    ) -> None:
        super().__init__(unlabeled_batch_size, combine, jitter, mean, std, ignore_index, seed)
        if not 0 <= ema_decay < 1:
            raise ValueError(f"method.ema_decay={ema_decay} must be in [0, 1)")
        if consistency_weight < 0:
            raise ValueError(f"method.consistency_weight={consistency_weight} must be >= 0")
        if rampup < 0:
            raise ValueError(f"method.rampup={rampup} must be >= 0 (optimizer steps)")
        if validate not in VALIDATED:
            raise ValueError(f"method.validate={validate} is not one of: {', '.join(VALIDATED)}")
        self.ema_decay = float(ema_decay)
        self.consistency_weight = float(consistency_weight)
        self.rampup = int(rampup)
        self.validate = validate
        self.threshold = float(threshold)
        # the network the task does not hold as its model: the student when the teacher
        # validates, else the teacher
        self.network: nn.Module | None = None
        self._stepped: int | None = None

    def bind(self, model: nn.Module) -> None:
        self.network = copy.deepcopy(model)
        self._teacher_of(model).requires_grad_(False)

    def _teacher_of(self, model: nn.Module) -> nn.Module:
        return model if self.validate == "teacher" else self.network

    def teacher(self, task: TaskView) -> nn.Module:
        return self._teacher_of(task.model)

    def student(self, task: TaskView) -> nn.Module:
        return self.network if self.validate == "teacher" else task.model

    def training_step(self, task: TaskView, batch: dict[str, Any]) -> StepLoss:
        images, masks, names = batch["labeled"]
        # the hidden masks go to `pseudo_accuracy` only
        weak, hidden, unlabeled_names = batch["unlabeled"]
        student, teacher = self.student(task), self.teacher(task)
        supervised, logged = task.supervised_loss(images, masks, model=student)
        training = teacher.training
        teacher.eval()
        with torch.no_grad():
            targets = teacher(task.in_model_format(weak)).softmax(1)
        teacher.train(training)
        noisy = weak
        if self.jitter > 0:
            generator = step_generator(self.seed, task.global_step)
            noisy = colour_jitter(weak, self.mean, self.std, self.jitter, generator)
        predictions = student(task.in_model_format(noisy)).softmax(1)
        consistency = F.mse_loss(predictions, targets)
        weight = self.consistency_weight * sigmoid_rampup(task.global_step, self.rampup)
        logged["train/loss/supervised"] = supervised.detach()
        logged["train/loss/unlabeled"] = consistency.detach()
        logged["train/pseudo/confident_share"] = (
            (targets.max(1).values >= self.threshold).float().mean()
        )
        accuracy = pseudo_accuracy(targets.argmax(1), hidden, self.ignore_index)
        if accuracy is not None:
            logged["train/pseudo/accuracy"] = accuracy
        loss = supervised + weight * consistency
        return StepLoss(loss, logged, images.shape[0], [*names, *unlabeled_names])

    def on_train_start(self, task: TaskView) -> None:
        self._stepped = task.global_step

    def on_train_batch_end(self, task: TaskView) -> None:
        # only after a batch that stepped the optimizer (not one accumulating gradients)
        if self._stepped is not None and task.global_step > self._stepped:
            self._stepped = task.global_step
            decay = ema_decay_at(task.global_step, self.ema_decay)
            ema_update(self.teacher(task), self.student(task), decay)
