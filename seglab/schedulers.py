"""Learning-rate schedules with one calling convention: ``factory(optimizer, total_steps)``.

The task knows the number of optimizer steps only once the trainer is attached, so scheduler
configs are partials and every schedule here is stepped once per optimizer step.
"""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    LambdaLR,
    LinearLR,
    LRScheduler,
    PolynomialLR,
    SequentialLR,
)


def _with_warmup(
    optimizer: Optimizer, main: LRScheduler, warmup_steps: int, total_steps: int
) -> LRScheduler:
    if warmup_steps < 0 or warmup_steps >= max(total_steps, 1):
        raise ValueError(
            f"scheduler.warmup_steps={warmup_steps} must be >= 0 and smaller than the run's "
            f"{total_steps} optimizer steps"
        )
    if warmup_steps <= 1:
        return main
    # lr * (t + 1) / warmup_steps for t < warmup_steps: the full rate at the last warm-up step
    warmup = LinearLR(optimizer, start_factor=1.0 / warmup_steps, total_iters=warmup_steps - 1)
    return SequentialLR(optimizer, [warmup, main], milestones=[warmup_steps])


def poly(
    optimizer: Optimizer, total_steps: int, power: float = 0.9, warmup_steps: int = 0
) -> LRScheduler:
    """Polynomial decay to zero, the usual schedule of DeepLab-style segmentation recipes.

    Args:
        optimizer: the optimizer whose learning rate is scheduled.
        total_steps: optimizer steps in the whole run (given by the task).
        power: exponent of ``(1 - step / total_steps)``; 1.0 is linear decay.
        warmup_steps: linear warm-up steps from ``lr / warmup_steps`` to ``lr`` before decaying.
    """
    main = PolynomialLR(optimizer, total_iters=max(total_steps - warmup_steps, 1), power=power)
    return _with_warmup(optimizer, main, warmup_steps, total_steps)


def cosine(
    optimizer: Optimizer, total_steps: int, min_lr: float = 0.0, warmup_steps: int = 0
) -> LRScheduler:
    """Cosine decay over the whole run.

    Args:
        optimizer: the optimizer whose learning rate is scheduled.
        total_steps: optimizer steps in the whole run (given by the task).
        min_lr: learning rate reached at the last step.
        warmup_steps: linear warm-up steps before the decay starts.
    """
    main = CosineAnnealingLR(optimizer, T_max=max(total_steps - warmup_steps, 1), eta_min=min_lr)
    return _with_warmup(optimizer, main, warmup_steps, total_steps)


def constant(optimizer: Optimizer, total_steps: int, warmup_steps: int = 0) -> LRScheduler:
    """The optimizer's own learning rate for the whole run (optionally after a warm-up).

    Args:
        optimizer: the optimizer whose learning rate is kept.
        total_steps: optimizer steps in the whole run (given by the task).
        warmup_steps: linear warm-up steps before the rate is held.
    """
    main = LambdaLR(optimizer, lambda _: 1.0)
    return _with_warmup(optimizer, main, warmup_steps, total_steps)
