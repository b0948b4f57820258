"""Learning-rate schedules with one calling convention: ``factory(optimizer, total_steps)``.

The task knows the number of optimizer steps only once the trainer is attached, so scheduler
configs are partials: the task passes the optimizer whose learning rate is scheduled and
``total_steps``, the optimizer steps of the whole run, and every schedule here is stepped once
per optimizer step. Each takes ``warmup_steps``, linear warm-up steps from
``lr / warmup_steps`` to ``lr`` before the schedule proper starts.

A run limited by wall time (``trainer.max_time``) rather than epochs does not know its step
count at all: given ``max_time``, the decaying schedules measure their progress as the larger
of the steps done and the time used, so the rate has decayed when the trainer stops, on any
machine. Such a run is no longer step-for-step reproducible, which is why it is opt-in.
"""

from __future__ import annotations

import math
import re
import time
from datetime import timedelta
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    LambdaLR,
    LinearLR,
    LRScheduler,
    PolynomialLR,
    SequentialLR,
)


def _check_warmup(warmup_steps: int, total_steps: int) -> None:
    if warmup_steps < 0 or warmup_steps >= max(total_steps, 1):
        raise ValueError(
            f"scheduler.warmup_steps={warmup_steps} must be >= 0 and smaller than the run's "
            f"{total_steps} optimizer steps"
        )


def _with_warmup(
    optimizer: Optimizer, main: LRScheduler, warmup_steps: int, total_steps: int
) -> LRScheduler:
    _check_warmup(warmup_steps, total_steps)
    if warmup_steps <= 1:
        return main
    # lr * (t + 1) / warmup_steps for t < warmup_steps: the full rate at the last warm-up step
    warmup = LinearLR(optimizer, start_factor=1.0 / warmup_steps, total_iters=warmup_steps - 1)
    return SequentialLR(optimizer, [warmup, main], milestones=[warmup_steps])


def max_time_seconds(max_time: Any) -> float | None:
    """Seconds in a ``trainer.max_time`` value: "DD:HH:MM:SS", a timedelta dict, or seconds."""
    if max_time is None:
        return None
    if isinstance(max_time, int | float):
        seconds = float(max_time)
    elif isinstance(max_time, str):
        match = re.fullmatch(r"(\d+):(\d\d):(\d\d):(\d\d)", max_time.strip())
        if match is None:
            raise ValueError(
                f"trainer.max_time={max_time!r} is not a duration: write DD:HH:MM:SS, "
                "e.g. 00:00:10:00 for ten minutes"
            )
        days, hours, minutes, secs = (int(part) for part in match.groups())
        seconds = timedelta(days=days, hours=hours, minutes=minutes, seconds=secs).total_seconds()
    else:
        seconds = timedelta(**dict(max_time)).total_seconds()
    if seconds <= 0:
        raise ValueError(f"trainer.max_time={max_time!r} must be a positive duration")
    return seconds


class TimedDecay(LRScheduler):
    """Poly or cosine decay whose progress is steps or wall time, whichever is further along.

    The clock starts at the first optimizer step, so set-up and the sanity check do not count,
    as they do not for the trainer's ``max_time``. Its reading is saved in the state dict (as a
    number: the checkpoint stays loadable with ``weights_only``), so a resumed run continues
    the decay where the interrupted one left it.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        total_steps: int,
        max_seconds: float,
        shape: str = "poly",
        power: float = 0.9,
        min_lr: float = 0.0,
        warmup_steps: int = 0,
    ) -> None:
        if shape not in ("poly", "cosine"):
            raise ValueError(f"shape={shape!r} must be poly or cosine")
        _check_warmup(warmup_steps, total_steps)
        self.total_steps = max(int(total_steps), 1)
        self.max_seconds = float(max_seconds)
        self.shape = shape
        self.power = float(power)
        self.min_lr = float(min_lr)
        self.warmup_steps = int(warmup_steps)
        self.elapsed_before = 0.0
        self._started: float | None = None
        super().__init__(optimizer)

    def elapsed(self) -> float:
        """Seconds of training counted so far, including those before a resume."""
        running = 0.0 if self._started is None else time.monotonic() - self._started
        return self.elapsed_before + running

    def progress(self) -> float:
        """Fraction of the run done after ``last_epoch`` steps, in [0, 1]."""
        steps = self.last_epoch - self.warmup_steps
        by_steps = steps / max(self.total_steps - self.warmup_steps, 1)
        return min(max(by_steps, self.elapsed() / self.max_seconds, 0.0), 1.0)

    def step(self, epoch: int | None = None) -> None:
        if self._started is None and self.last_epoch >= 0:
            self._started = time.monotonic()
        super().step(epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch < self.warmup_steps:
            # the same linear warm-up as the step-based schedules: full rate at its last step
            scale = (self.last_epoch + 1) / self.warmup_steps
            return [base * scale for base in self.base_lrs]
        done = self.progress()
        if self.shape == "poly":
            return [base * (1.0 - done) ** self.power for base in self.base_lrs]
        cosine = 0.5 * (1.0 + math.cos(math.pi * done))
        return [self.min_lr + (base - self.min_lr) * cosine for base in self.base_lrs]

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["elapsed_before"] = self.elapsed()
        state["_started"] = None
        return state


def _decay(
    optimizer: Optimizer,
    total_steps: int,
    shape: str,
    power: float,
    min_lr: float,
    warmup_steps: int,
    max_time: Any,
) -> LRScheduler:
    """The poly or cosine decay after the warm-up, by steps, or by steps or wall time
    (`TimedDecay`) when the run has a wall-time budget ``max_time``."""
    max_seconds = max_time_seconds(max_time)
    if max_seconds is not None:
        return TimedDecay(optimizer, total_steps, max_seconds, shape, power, min_lr, warmup_steps)
    decay_steps = max(total_steps - warmup_steps, 1)
    if shape == "poly":
        main: LRScheduler = PolynomialLR(optimizer, total_iters=decay_steps, power=power)
    else:
        main = CosineAnnealingLR(optimizer, T_max=decay_steps, eta_min=min_lr)
    return _with_warmup(optimizer, main, warmup_steps, total_steps)


def poly(
    optimizer: Optimizer,
    total_steps: int,
    power: float = 0.9,
    warmup_steps: int = 0,
    max_time: Any = None,
) -> LRScheduler:
    """Polynomial decay to zero, the usual schedule of DeepLab-style segmentation recipes.

    Args:
        power: exponent of ``(1 - step / total_steps)``; 1.0 is linear decay.
        warmup_steps: linear warm-up steps before the decay starts.
        max_time: the run's wall-time budget (``trainer.max_time``); when set, the decay also
            reaches zero when the budget is used up (see :class:`TimedDecay`).
    """
    return _decay(optimizer, total_steps, "poly", power, 0.0, warmup_steps, max_time)


def cosine(
    optimizer: Optimizer,
    total_steps: int,
    min_lr: float = 0.0,
    warmup_steps: int = 0,
    max_time: Any = None,
) -> LRScheduler:
    """Cosine decay over the whole run.

    Args:
        min_lr: learning rate reached at the last step.
        warmup_steps: linear warm-up steps before the decay starts.
        max_time: the run's wall-time budget (``trainer.max_time``); when set, the decay also
            ends when the budget is used up (see :class:`TimedDecay`).
    """
    return _decay(optimizer, total_steps, "cosine", 0.0, min_lr, warmup_steps, max_time)


def constant(optimizer: Optimizer, total_steps: int, warmup_steps: int = 0) -> LRScheduler:
    """The optimizer's own learning rate for the whole run (optionally after a warm-up).

    Args:
        warmup_steps: linear warm-up steps before the rate is held.
    """
    main = LambdaLR(optimizer, lambda _: 1.0)
    return _with_warmup(optimizer, main, warmup_steps, total_steps)
