"""What every training method is: one object the task holds, which turns a training batch into
the loss and the values it logs, and keeps its own state (a teacher network) as submodules, so
that checkpoints carry it and a resumed run continues with it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

from torch import Tensor, nn

from seglab.data.base import SegmentationDataModule
from seglab.data.metadata import DatasetError
from seglab.errors import SeglabError

log = logging.getLogger(__name__)
#: how `pytorch_lightning.utilities.CombinedLoader` may pair labelled and unlabelled loaders
COMBINE_MODES = ("max_size_cycle", "min_size")


class TaskView(Protocol):
    """The part of the LightningModule a method uses: its network, its step count, its
    supervised loss and its memory format. Methods see this and not the task itself, so the
    task can hold a method without the methods importing the task."""

    model: nn.Module

    @property
    def global_step(self) -> int: ...

    def supervised_loss(
        self, images: Tensor, masks: Tensor, model: nn.Module | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]: ...

    def in_model_format(self, images: Tensor) -> Tensor: ...


class StepLoss(NamedTuple):
    """One training step's loss, what is logged beside it, and where its batch came from."""

    #: the scalar the optimizer minimises
    loss: Tensor
    #: detached values logged under their full names (``train/loss/ce``, ``train/pseudo/...``)
    logged: dict[str, Tensor]
    #: the labelled batch's size, the weight of the step in epoch means
    batch_size: int
    #: the names of the step's samples, labelled then unlabelled, for error reports
    names: list[str]


class TrainingMethod(nn.Module):
    """How a task learns from a training batch (``conf/method``).

    A method that learns from unlabelled images sets ``unlabeled_batch_size``; its batches are
    then ``{"labeled": (images, masks, names), "unlabeled": (images, hidden, names)}``, where
    ``hidden`` holds the masks of training samples left unlabelled (void for other images),
    handed over only to score pseudo-labels.
    """

    #: the option of ``conf/method`` that selects the method, for messages
    name = "supervised"
    #: the task modes (``seglab.task_modes``) the method can learn in
    modes: tuple[str, ...] = ("multiclass", "binary", "multilabel")
    #: images per unlabelled batch; None: the method learns from labelled batches alone
    unlabeled_batch_size: int | None = None
    #: how the labelled and unlabelled loaders are combined (`COMBINE_MODES`)
    combine = "max_size_cycle"

    def bind(self, model: nn.Module) -> None:
        """Called once by the task with the network it validates and saves."""

    def attach(self, datamodule: SegmentationDataModule) -> None:
        """Ask ``datamodule`` for the unlabelled batches the method learns from, before training.

        Raises:
            SeglabError: for a method that learns from unlabelled images when there are none.
        """
        try:
            unlabeled = datamodule.unlabeled_dataset()
        except DatasetError as error:
            raise SeglabError(str(error)) from None
        if self.unlabeled_batch_size is None:
            if datamodule.few_labels.files is not None:
                log.warning(
                    "method=%s does not use the images of data.few_labels.unlabeled_dir", self.name
                )
            return
        if unlabeled is None or len(unlabeled) == 0:
            raise SeglabError(
                f"method={self.name} learns from unlabelled images, but this run has none: set "
                "data.few_labels.labeled_fraction below 1, data.few_labels.labeled_count or "
                "data.few_labels.unlabeled_dir"
            )
        datamodule.pair_unlabeled(self.unlabeled_batch_size, self.combine)

    def training_step(self, task: TaskView, batch: Any) -> StepLoss:
        """The loss of one training batch."""
        raise NotImplementedError(f"{type(self).__name__} must implement training_step")

    def on_train_start(self, task: TaskView) -> None:
        """Called when fitting starts or resumes."""

    def on_train_batch_end(self, task: TaskView) -> None:
        """Called after each training batch (and the optimizer step it may have made)."""


class UnlabeledMethod(TrainingMethod):
    """A method that also learns from unlabelled images: the loading and perturbation options
    FixMatch and Mean Teacher share, checked and kept in one place.

    Args:
        unlabeled_batch_size: unlabelled images drawn with each labelled batch.
        combine: how the two loaders are combined (`COMBINE_MODES`).
        jitter: colour-jitter strength of the perturbation, in ``[0, 1)``.
        mean, std: per-channel normalisation of the images (the data's).
        ignore_index: the data's void value.
        seed: seeds the perturbations, with the step (the run's seed).
    """

    # pseudo-labels are a softmax's most probable class, consistency compares class probabilities
    modes = ("multiclass",)

    def __init__(
        self,
        unlabeled_batch_size: int,
        combine: str,
        jitter: float,
        mean: Sequence[float],
        std: Sequence[float],
        ignore_index: int,
        seed: int,
    ) -> None:
        super().__init__()
        if unlabeled_batch_size < 1:
            raise ValueError(f"method.unlabeled_batch_size={unlabeled_batch_size} must be positive")
        if combine not in COMBINE_MODES:
            raise ValueError(
                f"method.combine={combine} is not one of: {', '.join(COMBINE_MODES)} "
                f"(method={self.name})"
            )
        if not 0 <= jitter < 1:
            raise ValueError(f"method.jitter={jitter} must be in [0, 1)")
        self.unlabeled_batch_size = int(unlabeled_batch_size)
        self.combine = combine
        self.jitter = float(jitter)
        self.mean = [float(value) for value in mean]
        self.std = [float(value) for value in std]
        self.ignore_index = int(ignore_index)
        self.seed = int(seed)


def pseudo_accuracy(pseudo: Tensor, hidden: Tensor, ignore_index: int) -> Tensor | None:
    """Share of the pixels a hidden mask labels where the pseudo-label agrees with it; None
    when it labels none (images from ``data.few_labels.unlabeled_dir``). A diagnosis only: the
    hidden masks never reach a loss."""
    known = hidden != ignore_index
    if not bool(known.any()):
        return None
    return (pseudo[known] == hidden[known]).float().mean()
