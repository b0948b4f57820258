"""How the train split is dealt: cross-validation folds, a seeded val share, held-out name
groups, and the labelled subset.

Each function takes the names of the train split's samples, in dataset order, and returns
indices into it, in dataset order. Where a seed decides, a sample's part follows from its name
and the seed alone (a hash, never a library's random stream), so the cut is the same on every
machine and version, in a resumed run and in every job of a sweep, and does not depend on the
order in which a folder lists its files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import NamedTuple

# how many groups an error names before it only counts the rest
MAX_LISTED_GROUPS = 12


class TrainValSplit(NamedTuple):
    """Indices into the train split: the samples trained on, and those validated on."""

    train: list[int]
    val: list[int]


class LabeledSplit(NamedTuple):
    """Indices into the train split: the samples trained on with their masks, and the others."""

    labeled: list[int]
    unlabeled: list[int]


def ranked(names: Sequence[str], indices: Iterable[int], seed: int, purpose: str) -> list[int]:
    """``indices`` ordered by a hash of ``(purpose, seed, name)``: ``purpose`` keeps the folds,
    the val share and the labelled subset of one seed independent of each other."""

    def key(index: int) -> bytes:
        text = f"seglab.{purpose}/{seed}/{names[index]}"
        return hashlib.blake2b(text.encode(), digest_size=8).digest()

    return sorted(indices, key=key)


def _cut(count: int, held: set[int]) -> TrainValSplit:
    """The ``count`` samples cut into those not ``held`` (trained on) and those held."""
    return TrainValSplit(
        train=[index for index in range(count) if index not in held],
        val=[index for index in range(count) if index in held],
    )


def fold_of(names: Sequence[str], folds: int, seed: int) -> list[int]:
    """The fold of each sample named in ``names``: sizes differ by at most one.

    The samples are ranked by a hash of ``(seed, name)`` and dealt to the folds in turn.
    """
    assigned = [0] * len(names)
    for rank, index in enumerate(ranked(names, range(len(names)), seed, "folds")):
        assigned[index] = rank % folds
    return assigned


def fold_cut(names: Sequence[str], folds: int, fold: int, seed: int) -> TrainValSplit:
    """Fold ``fold`` of the train split (validated on) and the other folds (trained on).

    Raises:
        ValueError: naming ``data.splits.folds`` when some fold would be empty.
    """
    if folds > len(names):
        raise ValueError(
            f"data.splits.folds={folds} exceeds the {len(names)} samples of the train split, so "
            f"a fold would be empty; use data.splits.folds <= {len(names)}"
        )
    assigned = fold_of(names, folds, seed)
    return _cut(len(names), {index for index, value in enumerate(assigned) if value == fold})


def share_cut(names: Sequence[str], fraction: float, seed: int) -> TrainValSplit:
    """A share ``fraction`` of the train split (rounded, at least one, never all) validated
    on, and the rest trained on: the first samples ranked by a hash of ``(seed, name)``.

    Raises:
        ValueError: naming ``data.splits.val_fraction`` when the train split has under two samples.
    """
    if len(names) < 2:
        raise ValueError(
            f"data.splits.val_fraction={fraction} needs at least 2 train images to validate on "
            f"some and train on the others; there are {len(names)}"
        )
    count = min(max(round(fraction * len(names)), 1), len(names) - 1)
    return _cut(len(names), set(ranked(names, range(len(names)), seed, "split")[:count]))


def groups(names: Sequence[str]) -> list[str]:
    """The distinct parts of ``names`` before their first ``_``, sorted: the groups a user can
    hold out when the names carry a group prefix."""
    return sorted({name.split("_", 1)[0] for name in names})


def _listed(values: Sequence[str]) -> str:
    """``values`` for an error, the first `MAX_LISTED_GROUPS` named and the rest counted."""
    shown = ", ".join(values[:MAX_LISTED_GROUPS])
    more = len(values) - MAX_LISTED_GROUPS
    return f"{shown} (and {more} more)" if more > 0 else shown


def shown_prefixes(prefixes: Sequence[str]) -> str:
    """``data.splits.holdout``'s prefixes as a command line writes them."""
    return prefixes[0] if len(prefixes) == 1 else f"[{','.join(prefixes)}]"


def hold_out(names: Sequence[str], prefixes: Sequence[str]) -> TrainValSplit:
    """The samples whose name starts with one of ``prefixes`` (validated on), and the others
    (trained on).

    Raises:
        ValueError: naming ``data.splits.holdout`` and the groups of ``names`` when a prefix
            starts no name, or when the prefixes take every sample and leave none to train on.
    """
    shown = shown_prefixes(prefixes)
    unmatched = [p for p in prefixes if not any(name.startswith(p) for name in names)]
    if unmatched:
        raise ValueError(
            f"data.splits.holdout={shown}: no name of the {len(names)} train samples starts with "
            f"{_listed(unmatched)}; their groups (the part before the first _) are "
            f"{_listed(groups(names))}"
        )
    held = {index for index, name in enumerate(names) if name.startswith(tuple(prefixes))}
    if len(held) == len(names):
        raise ValueError(
            f"data.splits.holdout={shown} takes all {len(names)} train samples, leaving none to "
            f"train on; hold out fewer of their groups (the part before the first _): "
            f"{_listed(groups(names))}"
        )
    return _cut(len(names), held)


def split_labeled(
    names: Sequence[str],
    pool: Sequence[int],
    fraction: float | None,
    count: int | None,
    seed: int,
) -> LabeledSplit:
    """The labelled and unlabelled samples among the train-split indices ``pool``.

    The samples of the pool are ranked by a hash of ``(seed, name)``; the first ``count`` of
    them (or ``fraction`` of the pool, rounded down; all of it when both are None) stay
    labelled.

    Raises:
        ValueError: naming the key when the subset would be empty or larger than the pool.
    """
    pool = list(pool)
    if count is not None:
        if count > len(pool):
            raise ValueError(
                f"data.few_labels.labeled_count={count} exceeds the {len(pool)} training samples; "
                f"use data.few_labels.labeled_count <= {len(pool)}"
            )
        kept = count
    else:
        # rounded first: 0.29 * 100 is 28.999999999999996
        kept = int(round((1.0 if fraction is None else fraction) * len(pool), 6))
        if kept < 1:
            raise ValueError(
                f"data.few_labels.labeled_fraction={fraction} of the {len(pool)} training samples "
                f"leaves no labelled image; use at least {1 / len(pool):.4g}, or "
                "data.few_labels.labeled_count"
            )
    labeled = set(ranked(names, pool, seed, "labeled")[:kept])
    return LabeledSplit(
        labeled=[index for index in pool if index in labeled],
        unlabeled=[index for index in pool if index not in labeled],
    )
