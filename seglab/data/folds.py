"""k-fold cross-validation, and a val share: which part of the train split each sample is in.

A sample's fold (or whether it is in the val share) follows from its name and the seed alone
(a hash, never a library's random stream), so the cut is the same on every machine and
version, and does not depend on the order in which a folder lists its files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from seglab.atomic import write_text

#: the file a cross-validation run records its folds in, inside its run directory
RECORD_NAME = "folds.json"
#: the file a run validating on a share of the train split records it in
SPLIT_RECORD_NAME = "split.json"


class FoldSplit(NamedTuple):
    """Indices into the train split: the folds trained on, and the fold validated on."""

    train: list[int]
    val: list[int]


def check_folds(folds: int | None, fold: int | None) -> None:
    """Refuse ``data.folds``/``data.fold`` values that select no fold, naming the key."""
    if folds is None:
        if fold is not None:
            raise ValueError(
                f"data.fold={fold} is set but data.folds is null; set data.folds=K (K >= 2) "
                "to cross-validate, or data.fold=null"
            )
        return
    if folds < 2:
        raise ValueError(f"data.folds={folds} must be at least 2 (or null: no cross-validation)")
    if fold is None or not 0 <= fold < folds:
        raise ValueError(
            f"data.fold={fold} must be in [0, {folds}) with data.folds={folds}; run every fold "
            f"with -m data.fold='range({folds})'"
        )


def _rank_key(seed: int, name: str, purpose: str = "folds") -> bytes:
    return hashlib.blake2b(f"seglab.{purpose}/{seed}/{name}".encode(), digest_size=8).digest()


def fold_of(names: Sequence[str], folds: int, seed: int) -> list[int]:
    """The fold of each sample named in ``names``: sizes differ by at most one.

    The samples are ordered by a hash of ``(seed, name)`` and dealt to the folds in turn.
    """
    order = sorted(range(len(names)), key=lambda index: _rank_key(seed, names[index]))
    assigned = [0] * len(names)
    for rank, index in enumerate(order):
        assigned[index] = rank % folds
    return assigned


def split_train(names: Sequence[str], folds: int, fold: int, seed: int) -> FoldSplit:
    """Fold ``fold`` of the train split (``names``, in dataset order) and the other folds.

    Raises:
        ValueError: naming ``data.folds`` when some fold would be empty.
    """
    if folds > len(names):
        raise ValueError(
            f"data.folds={folds} exceeds the {len(names)} samples of the train split, so a fold "
            f"would be empty; use data.folds <= {len(names)}"
        )
    assigned = fold_of(names, folds, seed)
    return FoldSplit(
        train=[index for index, value in enumerate(assigned) if value != fold],
        val=[index for index, value in enumerate(assigned) if value == fold],
    )


def check_val_fraction(fraction: float | None, folds: int | None) -> float | None:
    """``data.val_fraction`` as a float, or None; refused outside (0, 1) or with folds."""
    if fraction is None:
        return None
    if folds is not None:
        raise ValueError(
            f"data.val_fraction={fraction} and data.folds={folds} both choose the validation "
            "samples from the train split; set one of them to null"
        )
    if not 0 < fraction < 1:
        raise ValueError(
            f"data.val_fraction={fraction} must be in (0, 1): the share of the train images "
            "validated on, e.g. 0.2; null validates on the val split"
        )
    return float(fraction)


def split_share(names: Sequence[str], fraction: float, seed: int) -> FoldSplit:
    """The train split (``names``, in dataset order) cut into the samples trained on and a
    share ``fraction`` of it (rounded, at least one, never all) validated on.

    The samples are ordered by a hash of ``(seed, name)`` and the first ones are validated on.

    Raises:
        ValueError: naming ``data.val_fraction`` when the train split has under two samples.
    """
    if len(names) < 2:
        raise ValueError(
            f"data.val_fraction={fraction} needs at least 2 train images to validate on some "
            f"and train on the others; there are {len(names)}"
        )
    count = min(max(round(fraction * len(names)), 1), len(names) - 1)
    order = sorted(range(len(names)), key=lambda index: _rank_key(seed, names[index], "split"))
    held = set(order[:count])
    return FoldSplit(
        train=[index for index in range(len(names)) if index not in held],
        val=[index for index in range(len(names)) if index in held],
    )


def write_record(
    path: Path, folds: int, fold: int, seed: int, train: list[str], val: list[str]
) -> None:
    """Write the fold's sample names to ``path`` (JSON), whole or not at all."""
    record = {"folds": folds, "fold": fold, "fold_seed": seed, "val": val, "train": train}
    write_json(path, record)


def write_json(path: Path, record: dict[str, Any]) -> None:
    """Write ``record`` to ``path`` as JSON, whole or not at all.

    Every process of a distributed run writes the same content, each through a partial file
    of its own (`seglab.atomic.atomic_path`), so that a reader never sees a half-written record.
    """
    write_text(path, json.dumps(record, indent=1) + "\n")
