"""Segmentation losses on logits ``(N, C, H, W)`` and integer targets ``(N, H, W)``.

Every loss accepts the dataset's ``ignore_index`` so unlabeled pixels (e.g. 255 in VOC/CamVid)
contribute neither to the value nor to the gradient.
"""

import torch
import torch.nn.functional as F
from torch import nn


def _check_logits_and_target(logits: torch.Tensor, target: torch.Tensor) -> None:
    """Fail early naming both shapes; torch's own errors here are cryptic or, worse, broadcast."""
    if logits.dim() < 3:
        raise ValueError(f"expected logits (N, C, H, W), got {tuple(logits.shape)}")
    expected = (logits.shape[0], *logits.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(
            f"expected target (N, H, W) = {expected} to match logits (N, C, H, W) = "
            f"{tuple(logits.shape)}, got target {tuple(target.shape)}"
        )
    if target.dtype != torch.long:
        raise TypeError(f"expected target of dtype torch.int64, got {target.dtype}")


class CrossEntropyLoss(nn.Module):
    """Pixel-wise cross-entropy, averaged over the non-ignored pixels.

    Args:
        class_weights: one rescaling weight per class (length must equal the number of logit
            channels); the mean is then normalised by the summed weights of the target pixels,
            as in :func:`torch.nn.functional.cross_entropy`. ``None`` weighs classes equally.
        ignore_index: target value that marks pixels to leave out of the loss and its gradient.
            ``None`` means every pixel is labeled.
        label_smoothing: in ``[0, 1]``; mixes the one-hot target with a uniform distribution
            over classes by this amount, which discourages over-confident logits.
    """

    def __init__(
        self,
        class_weights: list[float] | None = None,
        ignore_index: int | None = -100,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
        weight = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float)
        # A buffer follows the module to the device and into the state dict.
        self.register_buffer("class_weights", weight)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_logits_and_target(logits, target)
        num_classes = logits.shape[1]
        if self.class_weights is not None and self.class_weights.numel() != num_classes:
            raise ValueError(
                f"expected {num_classes} class_weights (one per logit channel), "
                f"got {self.class_weights.numel()}"
            )
        ignore_index = -100 if self.ignore_index is None else self.ignore_index
        weight = None if self.class_weights is None else self.class_weights.to(logits.dtype)
        loss = F.cross_entropy(
            logits,
            target,
            weight=weight,
            ignore_index=ignore_index,
            label_smoothing=self.label_smoothing,
        )
        # torch returns 0/0 = NaN for a batch of only ignored pixels; select 0 on the device
        # (no host sync) and keep the graph so backward still runs.
        all_ignored = (target == ignore_index).all()
        return torch.where(all_ignored, loss.new_zeros(()), loss)


class DiceLoss(nn.Module):
    """Soft multiclass Dice loss: ``1 - mean_c (2 I_c + smooth) / (P_c + T_c + smooth)``.

    ``I_c``, ``P_c`` and ``T_c`` are the intersection, softmax-probability mass and one-hot
    target mass of class ``c``, summed over the batch and all pixels (not per image), so the
    loss tracks the dataset-level Dice that evaluation reports and a class present in a few
    pixels of one image is not inflated into a whole per-image term.

    Args:
        ignore_index: target value of pixels masked out of both the probabilities and the
            one-hot target, so they get no gradient. May be outside ``[0, C)`` (e.g. 255).
            ``None`` means every pixel is labeled.
        smooth: added to numerator and denominator; keeps the ratio defined for empty classes
            and softens the gradient when a class has few pixels.
        eps: lower bound of the denominator, so ``smooth=0`` with an empty class is 0 rather
            than NaN.
        present_classes_only: average only over classes that occur in the batch's non-ignored
            target. Otherwise an absent class contributes ``P_c / (P_c + smooth)``, which for
            a small ``smooth`` saturates near 1 at the first false-positive probability mass.
    """

    def __init__(
        self,
        ignore_index: int | None = None,
        smooth: float = 1.0,
        eps: float = 1e-7,
        present_classes_only: bool = True,
    ) -> None:
        super().__init__()
        if smooth < 0 or eps <= 0:
            raise ValueError(f"expected smooth >= 0 and eps > 0, got smooth={smooth}, eps={eps}")
        self.ignore_index = ignore_index
        self.smooth = smooth
        self.eps = eps
        self.present_classes_only = present_classes_only

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_logits_and_target(logits, target)
        num_classes = logits.shape[1]
        # Half-precision sums over millions of pixels lose precision (fp16 overflows at 65504).
        probs = logits.softmax(dim=1, dtype=torch.promote_types(logits.dtype, torch.float32))
        if self.ignore_index is None:
            valid = torch.ones_like(target, dtype=torch.bool)
        else:
            valid = target != self.ignore_index
        # one_hot rejects values >= C, so ignored pixels get a valid class before being masked.
        labels = torch.where(valid, target, torch.zeros_like(target))
        one_hot = F.one_hot(labels, num_classes).movedim(-1, 1).to(probs.dtype)
        mask = valid.unsqueeze(1).to(probs.dtype)
        probs = probs * mask
        one_hot = one_hot * mask

        reduce_dims = [0, *range(2, logits.dim())]
        intersection = (probs * one_hot).sum(reduce_dims)
        target_mass = one_hot.sum(reduce_dims)
        denominator = (probs.sum(reduce_dims) + target_mass + self.smooth).clamp_min(self.eps)
        per_class_loss = 1 - (2 * intersection + self.smooth) / denominator
        if not self.present_classes_only:
            return per_class_loss.mean()
        present = (target_mass > 0).to(per_class_loss.dtype)
        # With nothing present (all pixels ignored) this is 0, not NaN.
        return (per_class_loss * present).sum() / present.sum().clamp_min(1)


class WeightedSumLoss(nn.Module):
    """Weighted sum of named losses, e.g. cross-entropy plus Dice.

    Args:
        losses: name -> loss module, each called as ``loss(logits, target)``.
        weights: name -> weight of that term; names left out (all of them for None) weigh
            1.0. Naming a loss that is not in ``losses`` is an error, since a typo would
            otherwise silently keep weight 1.

    After each forward, ``last_terms`` holds every unweighted term, detached and on the device,
    so a caller can log them without a host sync.
    """

    def __init__(self, losses: dict[str, nn.Module], weights: dict[str, float] | None) -> None:
        super().__init__()
        if not losses:
            raise ValueError("expected at least one loss")
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(losses))
        if unknown:
            raise ValueError(f"weights name unknown losses {unknown}; losses are {sorted(losses)}")
        self.losses = nn.ModuleDict(losses)
        self.weights = {name: float(weights.get(name, 1.0)) for name in losses}
        self.last_terms: dict[str, torch.Tensor] = {}

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        terms = {name: loss(logits, target) for name, loss in self.losses.items()}
        self.last_terms = {name: term.detach() for name, term in terms.items()}
        return sum(self.weights[name] * term for name, term in terms.items())
