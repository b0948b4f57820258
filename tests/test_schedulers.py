"""Learning-rate schedules against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from seglab.schedulers import constant, cosine, poly


def _optimizer(lr: float = 1.0) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def _rates(scheduler: torch.optim.lr_scheduler.LRScheduler, steps: int) -> list[float]:
    rates = []
    for _ in range(steps):
        rates.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    return rates


def test_poly_decays_to_zero_with_the_given_power() -> None:
    rates = _rates(poly(_optimizer(), total_steps=4, power=2.0), 5)
    # (1 - t/4) ** 2 for t = 0..4
    assert rates == pytest.approx([1.0, 0.5625, 0.25, 0.0625, 0.0])


def test_cosine_reaches_min_lr_at_the_end() -> None:
    rates = _rates(cosine(_optimizer(), total_steps=4, min_lr=0.1), 5)
    expected = [0.1 + 0.9 * (1 + math.cos(math.pi * t / 4)) / 2 for t in range(5)]
    assert rates == pytest.approx(expected)


def test_warmup_ramps_linearly_then_holds() -> None:
    rates = _rates(constant(_optimizer(), total_steps=10, warmup_steps=4), 6)
    assert rates == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])


def test_warmup_longer_than_the_run_is_refused() -> None:
    with pytest.raises(ValueError, match="scheduler.warmup_steps=10"):
        poly(_optimizer(), total_steps=10, warmup_steps=10)
