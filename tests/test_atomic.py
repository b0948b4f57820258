"""seglab.atomic: a file is replaced whole or not at all, with the umask's permissions."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from seglab.atomic import atomic_path, write_text


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_a_written_file_has_the_umasks_permissions(tmp_path: Path, umask_022) -> None:
    target = tmp_path / "sub" / "record.json"
    write_text(target, "{}\n")
    assert target.read_text() == "{}\n"
    assert target.stat().st_mode & 0o777 == 0o644
    with atomic_path(tmp_path / "model.onnx") as partial, open(partial, "wb") as file:
        file.write(b"bytes")
    assert (tmp_path / "model.onnx").stat().st_mode & 0o777 == 0o644


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_partial(tmp_path: Path) -> None:
    target = tmp_path / "record.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as partial:
        partial.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_stale_partials_are_removed_only_when_asked(tmp_path: Path) -> None:
    target = tmp_path / "last.ckpt"
    stale = tmp_path / ".last.ckpt.0123456789ab.partial"
    stale.write_text("left by a killed writer")
    write_text(target, "a")
    assert stale.exists()
    with atomic_path(target, remove_stale=True) as partial:
        partial.write_text("b")
    assert not stale.exists()
    assert target.read_text() == "b"
