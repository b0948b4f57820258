"""Files written whole or not at all, with the permissions of any other file seglab writes.

A reader (a resumed run, a concurrent run sharing a cache, a colleague's script) finds the
previous file or the new one, never half of one: the content goes to a hidden partial file
beside the target (the same filesystem, so the rename is atomic), reaches the disk and is
renamed onto the target. The partial file is created as ``open()`` creates a file, 0o666 less
the umask (0644 under umask 022), and the rename keeps that mode; ``tempfile.mkstemp`` would
make it 0600, which nobody else could read.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(target: str | Path, remove_stale: bool = False) -> Iterator[Path]:
    """Yields an empty partial file beside ``target`` for the block to write (by its path,
    or opened ``"wb"``), then renames it onto ``target``; if the block raises, the partial
    file is removed and ``target`` stays as it was.

    Every call has a partial file of its own, so processes writing the same target at once
    (the ranks of a distributed run) never share one. ``remove_stale`` first removes the
    partial files of ``target`` that a killed writer left behind, for a target only one
    process writes (a checkpoint).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if remove_stale:
        for stale in target.parent.glob(f".{target.name}.*.partial"):
            stale.unlink(missing_ok=True)
    partial = target.with_name(f".{target.name}.{secrets.token_hex(6)}.partial")
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield partial
        _fsync(partial)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    # the rename itself reaches the disk only with its directory (POSIX opens directories)
    if os.name == "posix":
        _fsync(target.parent)


def write_text(target: str | Path, text: str) -> None:
    """``Path.write_text``, whole or not at all."""
    with atomic_path(target) as partial:
        partial.write_text(text)


def _fsync(path: Path) -> None:
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
