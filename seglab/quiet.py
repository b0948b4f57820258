"""Library messages that tell a seglab user nothing they can act on, each filtered by its own
text and source module, so that every other warning still shows.

A clean terminal is how a user tells a working install from a broken one: a deprecation inside
Lightning, or an advert for a product, printed on every run reads as something to fix.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

#: Lightning's logger of rank-zero messages, which prints its tips on every Trainer.
LIGHTNING_RANK_ZERO = "pytorch_lightning.utilities.rank_zero"
#: How each of Lightning's product tips (litlogger, litmodels) starts.
LIGHTNING_TIP = "💡 Tip: "


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(LIGHTNING_TIP)


_DROP_TIPS = _DropTips()


def quiet_lightning() -> None:
    """Before a Trainer is made: drop Lightning's product tips, and the FutureWarning torch
    raises where Lightning's own code (not seglab's) still builds a ``LeafSpec``."""
    logging.getLogger(LIGHTNING_RANK_ZERO).addFilter(_DROP_TIPS)  # added once however often
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
        module=r"pytorch_lightning\.utilities\._pytree",
    )


def quiet_torchscript() -> None:
    """Inside ``warnings.catch_warnings()`` around seglab-export's ``format=torchscript``: torch
    marks ``torch.jit.trace``, ``trace_method`` and ``load`` deprecated, advice for seglab's
    code that a user of the command cannot act on."""
    warnings.filterwarnings(
        "ignore",
        message=r"`torch\.jit\.\w+` is deprecated",
        category=FutureWarning,
        module=r"torch\.jit\.",
    )


@contextmanager
def quiet_event_reader() -> Iterator[None]:
    """While seglab reads a run's event files: TensorBoard's reader notes at INFO each end of
    a file it reached ("No path found after ..."), which a run's log would print."""
    reader = logging.getLogger("tensorboard")
    level = reader.level
    reader.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        reader.setLevel(level)
