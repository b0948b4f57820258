"""Learning-rate schedules against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from seglab.engine.schedulers import constant, cosine, poly


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


class _Clock:
    """A stand-in for ``time.monotonic`` that a test advances by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_timed_poly_decays_by_wall_time_when_time_runs_out_first(monkeypatch) -> None:
    clock = _Clock()
    monkeypatch.setattr("seglab.engine.schedulers.time.monotonic", clock)
    scheduler = poly(_optimizer(), total_steps=1000, power=1.0, max_time="00:00:01:40")
    optimizer = scheduler.optimizer
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1.0)
    optimizer.step()
    scheduler.step()  # the first step starts the clock: no time has passed yet
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1.0 - 1 / 1000)
    clock.now += 25.0  # a quarter of the 100 s budget, far ahead of 2/1000 steps
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.75)
    clock.now += 100.0
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0)


def test_timed_cosine_follows_steps_when_they_are_further_along(monkeypatch) -> None:
    clock = _Clock()
    monkeypatch.setattr("seglab.engine.schedulers.time.monotonic", clock)
    scheduler = cosine(_optimizer(), total_steps=4, min_lr=0.1, max_time=3600)
    rates = _rates(scheduler, 5)
    expected = [0.1 + 0.9 * (1 + math.cos(math.pi * t / 4)) / 2 for t in range(5)]
    assert rates == pytest.approx(expected)


def test_timed_decay_resumes_with_the_time_already_used(monkeypatch) -> None:
    clock = _Clock()
    monkeypatch.setattr("seglab.engine.schedulers.time.monotonic", clock)
    scheduler = poly(_optimizer(), total_steps=10_000, power=1.0, max_time={"seconds": 100})
    _rates(scheduler, 1)
    clock.now += 40.0
    state = scheduler.state_dict()
    # the saved state is plain numbers: loadable from a weights-only checkpoint
    torch.save(state, buffer := __import__("io").BytesIO())
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)

    clock.now += 1000.0  # time between the interruption and the resume does not count
    resumed = poly(_optimizer(), total_steps=10_000, power=1.0, max_time={"seconds": 100})
    resumed.load_state_dict(state)
    resumed.optimizer.step()
    resumed.step()
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(0.6)
    clock.now += 30.0
    resumed.optimizer.step()
    resumed.step()
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(0.3)


def test_timed_decay_warms_up_like_the_step_schedules() -> None:
    scheduler = poly(_optimizer(), total_steps=8, power=1.0, warmup_steps=4, max_time=3600)
    assert _rates(scheduler, 6) == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 0.75])


@pytest.mark.parametrize("bad", ["10 minutes", "00:10:00", "00:00:00:00", -5])
def test_bad_max_time_is_refused_naming_the_key(bad) -> None:
    with pytest.raises(ValueError, match="trainer.max_time"):
        poly(_optimizer(), total_steps=10, max_time=bad)
