"""What goes wrong with a user's input, and the one way every console script reports it.

Kept free of the training stack: ``seglab-compare`` and ``seglab-reproduce`` import it too.
"""

from __future__ import annotations

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
    """``<command>: error: <message>`` on stderr and exit status 2, as argparse does."""
    print(f"{command}: error: {message}", file=sys.stderr)
    sys.exit(2)


@contextmanager
def reported(command: str, *kinds: type[Exception]) -> Iterator[None]:
    """Turn a ``SeglabError`` (and ``kinds``) raised inside into :func:`fail`'s one line."""
    try:
        yield
    except (SeglabError, *kinds) as error:
        fail(command, str(error))
