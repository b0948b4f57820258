"""What a NaN or infinite training loss does (``on_nonfinite``): stop the run, or skip the batch.

Either needs the loss on the host, and reading a loss back makes an accelerator wait for its
step. Stopping does not need to be immediate, only to come before anything is validated or
saved, so `NonFiniteGuard` keeps the losses on the device and reads them back in one transfer
every few steps; skipping must decide before the optimizer step, so it reads every step's loss.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import torch
from torch import Tensor

from seglab.config.spec import NONFINITE_ACTIONS

# how many sample names a report of a bad batch lists before it only counts the rest
_MAX_LISTED_NAMES = 8

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """A training loss was NaN or infinite and ``on_nonfinite`` is ``stop``."""


class TrainingStep(NamedTuple):
    """Where a loss came from, for the report that names its step and samples."""

    step: int
    epoch: int
    batch_idx: int
    names: list[str]

    def describe(self, loss: float) -> str:
        listed = ", ".join(self.names[:_MAX_LISTED_NAMES])
        more = len(self.names) - _MAX_LISTED_NAMES
        return (
            f"training loss is {loss} at step {self.step} (epoch {self.epoch}, batch "
            f"{self.batch_idx}) of the samples [{listed}{f', and {more} more' if more > 0 else ''}]"
        )


class NonFiniteGuard:
    """Watches the training losses for NaN and infinity and acts as ``on_nonfinite`` says.

    Args:
        action: ``stop`` raises `NonFiniteLossError` for the first NaN or infinite loss, naming
            its step and samples; the losses are read back once ``check_every`` of them are
            pending (see `admit`) and whenever `check` is called. ``skip`` reads every loss
            back at once and leaves a NaN or infinite one's batch out of the update, with a
            warning.
    """

    def __init__(self, action: str = "stop") -> None:
        if action not in NONFINITE_ACTIONS:
            raise ValueError(
                f"on_nonfinite={action} must be one of: {', '.join(NONFINITE_ACTIONS)}"
            )
        self.action = action
        # stop mode: the losses not yet read back, with where each came from
        self._pending: list[tuple[Tensor, TrainingStep]] = []

    def admit(self, loss: Tensor, origin: TrainingStep, check_every: int) -> bool:
        """Whether the step may update the weights with ``loss``.

        In stop mode always true: the loss joins those pending, which are checked (and so may
        raise) once ``check_every`` of them have gathered. In skip mode false for a NaN or
        infinite loss, at the cost of one host synchronisation per step.
        """
        if self.action == "skip":
            if bool(torch.isfinite(loss)):
                return True
            log.warning("skipping the batch: %s", origin.describe(loss.item()))
            return False
        self._pending.append((loss.detach(), origin))
        if len(self._pending) >= check_every:
            self.check()
        return True

    def check(self) -> None:
        """Raise `NonFiniteLossError` for the first NaN or infinite loss pending, if any, in one
        transfer of all of them; the pending losses are cleared either way."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        losses = torch.stack([loss for loss, _ in pending]).cpu()
        bad = (~torch.isfinite(losses)).nonzero()
        if len(bad):
            index = int(bad[0])
            raise NonFiniteLossError(pending[index][1].describe(float(losses[index])))
