"""FixMatch for segmentation (Sohn et al., 2020): confident predictions on weakly augmented
unlabelled images supervise the same images under strong perturbation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from seglab.methods.base import (
    StepLoss,
    TaskView,
    UnlabeledMethod,
    pseudo_accuracy,
)
from seglab.methods.perturb import colour_jitter, cutmix, step_generator


def confident_targets(
    probabilities: Tensor, threshold: float, ignore_index: int
) -> tuple[Tensor, Tensor]:
    """Pseudo-labels of ``(N, C, H, W)`` class probabilities: the most probable class where its
    probability reaches ``threshold``, ``ignore_index`` elsewhere; and that confident mask."""
    confidence, labels = probabilities.max(1)
    confident = confidence >= threshold
    return torch.where(confident, labels, torch.full_like(labels, ignore_index)), confident


def unlabeled_loss(logits: Tensor, targets: Tensor, ignore_index: int) -> Tensor:
    """Cross-entropy on the confident pixels, averaged over all pixels: an unconfident pixel
    counts as a zero, so that a batch with few confident pixels weighs little."""
    total = F.cross_entropy(logits, targets, ignore_index=ignore_index, reduction="sum")
    return total / targets.numel()


class FixMatch(UnlabeledMethod):
    """FixMatch: labelled loss plus ``unlabeled_weight`` times the pseudo-label loss.

    The unlabelled batch arrives weakly augmented (the dataset's training transform: flips,
    crops, rescale). Its prediction, without gradient, gives pseudo-labels where the most
    probable class reaches ``threshold``; the same images, colour-jittered and CutMixed
    between each other (the pseudo-labels mixed the same way), are trained on them.

    Args:
        threshold: probability a pseudo-label needs to count.
        unlabeled_weight: weight of the unlabelled loss against the labelled one.
        unlabeled_batch_size: unlabelled images per step.
        combine: ``max_size_cycle`` (an epoch runs through the longer of the labelled and
            unlabelled loaders, cycling the other) or ``min_size`` (the shorter).
        jitter: strength of the colour jitter: brightness, contrast and saturation factors
            are drawn from ``[1 - jitter, 1 + jitter]``; 0 turns it off.
        cutmix: whether to CutMix the strongly perturbed images.
        mean: per-channel mean the images are normalised with (the data's).
        std: per-channel standard deviation the images are normalised with (the data's).
        ignore_index: the void value, which unconfident pixels get (the data's).
        seed: seeds the perturbations, with the step (the run's seed).
    """

    name = "fixmatch"

    def __init__(
        self,
        threshold: float,
        unlabeled_weight: float,
        unlabeled_batch_size: int,
        combine: str,
        jitter: float,
        cutmix: bool,
        mean: Sequence[float],
        std: Sequence[float],
        ignore_index: int,
        seed: int,
    ) -> None:
        super().__init__(unlabeled_batch_size, combine, jitter, mean, std, ignore_index, seed)
        if not 0 <= threshold <= 1:
            raise ValueError(f"method.threshold={threshold} must be in [0, 1]")
        if unlabeled_weight < 0:
            raise ValueError(f"method.unlabeled_weight={unlabeled_weight} must be >= 0")
        self.threshold = float(threshold)
        self.unlabeled_weight = float(unlabeled_weight)
        self.cutmix = bool(cutmix)

    def strong(
        self, images: Tensor, targets: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """The strong perturbation of ``images``, and ``targets`` moved with its CutMix."""
        if self.jitter > 0:
            images = colour_jitter(images, self.mean, self.std, self.jitter, generator)
        if self.cutmix:
            images, targets = cutmix(images, targets, generator)
        return images, targets

    def training_step(self, task: TaskView, batch: dict[str, Any]) -> StepLoss:
        images, masks, names = batch["labeled"]
        # the hidden masks go to `pseudo_accuracy` only
        weak, hidden, unlabeled_names = batch["unlabeled"]
        supervised, logged = task.supervised_loss(images, masks)
        with torch.no_grad():
            probabilities = task(task.in_model_format(weak)).softmax(1)
        targets, confident = confident_targets(probabilities, self.threshold, self.ignore_index)
        strong, strong_targets = self.strong(
            weak, targets, step_generator(self.seed, task.global_step)
        )
        unlabeled = unlabeled_loss(
            task(task.in_model_format(strong)), strong_targets, self.ignore_index
        )
        logged["train/loss/supervised"] = supervised.detach()
        logged["train/loss/unlabeled"] = unlabeled.detach()
        logged["train/pseudo/confident_share"] = confident.float().mean()
        accuracy = pseudo_accuracy(probabilities.argmax(1), hidden, self.ignore_index)
        if accuracy is not None:
            logged["train/pseudo/accuracy"] = accuracy
        loss = supervised + self.unlabeled_weight * unlabeled
        return StepLoss(loss, logged, images.shape[0], [*names, *unlabeled_names])
