"""A held-out group: the train samples whose names start with given prefixes become the
validation split, and the model trains on the rest.

Many datasets name their files by where they were recorded (CamVid's ``0006R0_f02460``: a
drive, then a frame). Frames of one drive look alike, so a val split of frames from the drives
trained on rewards memorising the streets; validating on a whole drive left out of training
measures how the model does on streets it never saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from seglab.data.folds import FoldSplit, write_json

# how many groups an error names before it only counts the rest
_MAX_LISTED_GROUPS = 12


def holdout_prefixes(holdout: str | Sequence[str] | None, folds: int | None) -> list[str] | None:
    """``data.holdout`` as a list of stem prefixes, or None (no held-out group).

    Raises:
        ValueError: naming ``data.holdout`` when it is not a non-empty prefix or list of them (a
            prefix of digits read as a number, its leading zeros lost, is not), or when
            ``data.folds`` also chooses the validation samples.
    """
    if holdout is None:
        return None
    if folds is not None:
        raise ValueError(
            f"data.holdout={holdout} and data.folds={folds} both choose the validation samples "
            "from the train split; set one of them to null"
        )
    listed = isinstance(holdout, Sequence) and not isinstance(holdout, str)
    prefixes = list(holdout) if listed else [holdout]
    if not prefixes or not all(isinstance(prefix, str) and prefix for prefix in prefixes):
        raise ValueError(
            f"data.holdout={holdout!r} must be a non-empty stem prefix or a list of them "
            "(quote one made of digits so that it stays text: data.holdout=\"'0016'\"), or null"
        )
    return prefixes


def groups(names: Sequence[str]) -> list[str]:
    """The distinct parts of ``names`` before their first ``_``, sorted: the groups a user can
    hold out when the names carry a group prefix."""
    return sorted({name.split("_", 1)[0] for name in names})


def _listed(values: list[str]) -> str:
    shown = ", ".join(values[:_MAX_LISTED_GROUPS])
    more = len(values) - _MAX_LISTED_GROUPS
    return f"{shown} (and {more} more)" if more > 0 else shown


def hold_out(names: Sequence[str], prefixes: Sequence[str]) -> FoldSplit:
    """Indices into the train split (``names``, in dataset order): those of the samples whose
    name starts with none of ``prefixes`` (trained on), and of those that start with one
    (validated on).

    Raises:
        ValueError: naming ``data.holdout`` and the groups of ``names`` when a prefix starts no
            name, or when the prefixes take every sample and leave none to train on.
    """
    shown = prefixes[0] if len(prefixes) == 1 else f"[{','.join(prefixes)}]"
    unmatched = [p for p in prefixes if not any(name.startswith(p) for name in names)]
    if unmatched:
        raise ValueError(
            f"data.holdout={shown}: no name of the {len(names)} train samples starts with "
            f"{_listed(unmatched)}; their groups (the part before the first _) are "
            f"{_listed(groups(names))}"
        )
    held = [index for index, name in enumerate(names) if name.startswith(tuple(prefixes))]
    if len(held) == len(names):
        raise ValueError(
            f"data.holdout={shown} takes all {len(names)} train samples, leaving none to train "
            f"on; hold out fewer of their groups (the part before the first _): "
            f"{_listed(groups(names))}"
        )
    kept = sorted(set(range(len(names))) - set(held))
    return FoldSplit(train=kept, val=held)


def write_record(path: Path, prefixes: Sequence[str], train: list[str], val: list[str]) -> None:
    """Write the prefixes and the names trained and validated on to ``path`` (JSON), whole or
    not at all."""
    write_json(path, {"holdout": list(prefixes), "val": val, "train": train})
