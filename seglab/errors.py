"""What goes wrong with a user's input, and the one way every console script reports it.

Kept free of the training stack: ``seglab-compare`` and ``seglab-reproduce`` import it too.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn


class SeglabError(Exception):
    """A problem with the user's input, reported as one line without a traceback."""


class UnreadableCheckpointError(SeglabError):
    """A checkpoint file that is truncated or otherwise not a checkpoint at all."""


class MissingCheckpointError(SeglabError):
    """A checkpoint path with no file."""


class SweepError(SeglabError):
    """A multirun that cannot work at all: it stops the whole sweep, not one job."""


def fail(command: str, message: str) -> NoReturn:
    """``<command>: error: <message>`` on stderr and exit status 2, as argparse does; the same
    line goes to the run's log file (Hydra's ``<run>/<command>.log``) when one is open, so a
    run directory left by a refused run says why it holds nothing."""
    line = f"{command}: error: {message}"
    print(line, file=sys.stderr)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(
                logging.makeLogRecord(
                    {"name": command, "levelno": logging.ERROR, "levelname": "ERROR", "msg": line}
                )
            )
            handler.flush()
    sys.exit(2)


@contextmanager
def reported(command: str, *kinds: type[Exception]) -> Iterator[None]:
    """Turn a ``SeglabError`` (and ``kinds``) raised inside into :func:`fail`'s one line."""
    try:
        yield
    except (SeglabError, *kinds) as error:
        fail(command, str(error))
