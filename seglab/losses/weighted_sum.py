"""A weighted sum of losses, e.g. cross-entropy plus Dice."""

from __future__ import annotations

import torch
from torch import nn


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
