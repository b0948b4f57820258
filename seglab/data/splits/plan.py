"""The one plan of how a run cuts its train split, made from the data settings.

A run validates on its dataset's val split, or on part of the train split: a cross-validation
fold (``data.splits.folds``), held-out name groups (``data.splits.holdout``) or a seeded share
(``data.splits.val_fraction``). Of the samples it trains on, all keep their masks, or a
labelled subset (``data.few_labels.labeled_fraction``/``labeled_count``). `plan_splits`
decides all of it at once, returns the indices of each part and the records of the cut, and
`write_record` writes every record the same way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seglab.atomic import write_text
from seglab.data.settings import normalised
from seglab.data.splits.cuts import (
    LabeledSplit,
    TrainValSplit,
    fold_cut,
    hold_out,
    share_cut,
    shown_prefixes,
    split_labeled,
)

if TYPE_CHECKING:
    from seglab.data.labels import FewLabelsSettings


def check_folds(folds: int | None, fold: int | None) -> None:
    """Refuse ``data.splits.folds``/``fold`` values that select no fold, naming the key."""
    if folds is None:
        if fold is not None:
            raise ValueError(
                f"data.splits.fold={fold} is set but data.splits.folds is null; set "
                "data.splits.folds=K (K >= 2) to cross-validate, or data.splits.fold=null"
            )
        return
    if folds < 2:
        raise ValueError(
            f"data.splits.folds={folds} must be at least 2 (or null: no cross-validation)"
        )
    if fold is None or not 0 <= fold < folds:
        raise ValueError(
            f"data.splits.fold={fold} must be in [0, {folds}) with data.splits.folds={folds}; run "
            f"every fold with -m data.splits.fold='range({folds})'"
        )


def holdout_prefixes(holdout: str | Sequence[str] | None) -> list[str] | None:
    """``data.splits.holdout`` as a list of stem prefixes, or None (no held-out group).

    Raises:
        ValueError: naming ``data.splits.holdout`` when it is not a non-empty prefix or list of
            them (a prefix of digits read as a number, its leading zeros lost, is not).
    """
    if holdout is None:
        return None
    listed = isinstance(holdout, Sequence) and not isinstance(holdout, str)
    prefixes = list(holdout) if listed else [holdout]
    if not prefixes or not all(isinstance(prefix, str) and prefix for prefix in prefixes):
        raise ValueError(
            f"data.splits.holdout={holdout!r} must be a non-empty stem prefix or a list of them "
            "(quote one made of digits so that it stays text: "
            "data.splits.holdout=\"'0016'\"), or null"
        )
    return prefixes


def check_val_fraction(fraction: float | None) -> float | None:
    """``data.splits.val_fraction`` as a float, or None; refused outside (0, 1)."""
    if fraction is None:
        return None
    if not 0 < fraction < 1:
        raise ValueError(
            f"data.splits.val_fraction={fraction} must be in (0, 1): the share of the train images "
            "validated on, e.g. 0.2; null validates on the val split"
        )
    return float(fraction)


def _optional(kind: type, value: Any) -> Any:
    return None if value is None else kind(value)


@dataclass(frozen=True)
class SplitSettings:
    """``data.splits``: which samples of the train split a run validates on, each field named
    as its ``data.splits.`` key; checked when made (and again by `dataclasses.replace`),
    naming the key at fault.

    ``folds``/``fold``/``fold_seed``, ``holdout`` and ``val_fraction``/``split_seed`` each
    choose the validation samples from the train split, so at most one of them is set. Each
    ``*_record`` is the JSON file its cut is written to at fit, or None for none. Which of
    the samples trained on keep their masks is the `seglab.data.labels.FewLabelsSettings`'.
    """

    folds: int | None = None
    fold: int | None = None
    fold_seed: int = 0
    folds_record: str | Path | None = None
    holdout: str | Sequence[str] | None = None
    holdout_record: str | Path | None = None
    val_fraction: float | None = None
    split_seed: int = 0
    split_record: str | Path | None = None

    def __post_init__(self) -> None:
        normalised(self, folds=_optional(int, self.folds), fold=_optional(int, self.fold))
        check_folds(self.folds, self.fold)
        normalised(
            self,
            holdout=holdout_prefixes(self.holdout),
            val_fraction=check_val_fraction(self.val_fraction),
            fold_seed=int(self.fold_seed),
            split_seed=int(self.split_seed),
        )
        chosen = {
            "holdout": None if self.holdout is None else shown_prefixes(self.holdout),
            "val_fraction": self.val_fraction,
            "folds": self.folds,
        }
        given = [f"data.splits.{key}={value}" for key, value in chosen.items() if value is not None]
        if len(given) > 1:
            raise ValueError(
                f"{given[0]} and {given[1]} both choose the validation samples from the train "
                "split; set one of them to null"
            )
        for key in ("folds_record", "holdout_record", "split_record"):
            normalised(self, **{key: _optional(Path, getattr(self, key))})

    @property
    def validates_on_train(self) -> bool:
        """Whether the validation samples come from the train split (its val split unused)."""
        return self.folds is not None or self.holdout is not None or self.val_fraction is not None


@dataclass(frozen=True)
class SplitRecord:
    """What a run writes of one cut: the settings that made it, then the names of each part
    (``val``/``train``, or ``labeled``/``unlabeled``), in this order in the file."""

    path: Path
    settings: dict[str, Any]
    parts: dict[str, list[str]]


def write_record(record: SplitRecord) -> None:
    """Write ``record`` to its path as JSON, whole or not at all.

    Every process of a distributed run writes the same content, each through a partial file
    of its own (`seglab.atomic.atomic_path`), so that a reader never sees a half-written record.
    """
    write_text(record.path, json.dumps({**record.settings, **record.parts}, indent=1) + "\n")


@dataclass(frozen=True)
class SplitPlan:
    """How a run cuts its train split.

    Attributes:
        names: the train split's sample names, in dataset order (empty when nothing is cut).
        validation: the samples trained on and validated on, for a run that validates on
            the train split; None when it validates on the val split.
        labeled: the samples trained on with and without their masks, for limited labels.
        records: what the run writes of its cuts, at fit.
    """

    names: list[str]
    validation: TrainValSplit | None
    labeled: LabeledSplit | None
    records: list[SplitRecord]

    def indices(self, split: str) -> list[int] | None:
        """Indices into the train split of the samples ``split`` reads; None where ``split``
        reads its own split whole."""
        if split == "train" and self.labeled is not None:
            return self.labeled.labeled
        if self.validation is None or split not in ("train", "val"):
            return None
        return self.validation.train if split == "train" else self.validation.val

    @property
    def unlabeled(self) -> list[int]:
        """Indices into the train split of the samples trained on without their masks."""
        return [] if self.labeled is None else self.labeled.unlabeled


def _validation(
    settings: SplitSettings, names: Sequence[str]
) -> tuple[TrainValSplit, Path | None, dict[str, Any]] | None:
    """The cut of the train split that the run validates on, its record file and settings."""
    if settings.folds is not None:
        assert settings.fold is not None, "checked with the folds"
        cut = fold_cut(names, settings.folds, settings.fold, settings.fold_seed)
        chosen = {"folds": settings.folds, "fold": settings.fold, "fold_seed": settings.fold_seed}
        return cut, settings.folds_record, chosen
    if settings.holdout is not None:
        cut = hold_out(names, settings.holdout)
        return cut, settings.holdout_record, {"holdout": list(settings.holdout)}
    if settings.val_fraction is not None:
        cut = share_cut(names, settings.val_fraction, settings.split_seed)
        chosen = {"val_fraction": settings.val_fraction, "split_seed": settings.split_seed}
        return cut, settings.split_record, chosen
    return None


def cuts(settings: SplitSettings, few_labels: FewLabelsSettings, split: str) -> bool:
    """Whether ``split`` reads only part of the train split, as the plan picks."""
    if split == "train":
        return settings.validates_on_train or few_labels.labels_limited
    return split == "val" and settings.validates_on_train


def plan_splits(
    settings: SplitSettings, few_labels: FewLabelsSettings, names: Sequence[str]
) -> SplitPlan:
    """Cut the train split, named by ``names`` in dataset order, as ``settings`` say: first the
    validation samples, then the labelled subset of the samples trained on (``few_labels``).

    Raises:
        ValueError: naming the key whose cut the train split cannot meet (more folds than
            samples, a prefix that starts no name, a subset that would be empty, ...).
    """
    names = list(names)
    records = []
    validation = _validation(settings, names)
    cut = None
    if validation is not None:
        cut, path, chosen = validation
        if path is not None:
            parts = {"val": [names[i] for i in cut.val], "train": [names[i] for i in cut.train]}
            records.append(SplitRecord(path, chosen, parts))
    labeled = None
    if few_labels.labels_limited:
        pool = range(len(names)) if cut is None else cut.train
        fraction, count = few_labels.labeled_fraction, few_labels.labeled_count
        labeled = split_labeled(names, pool, fraction, count, few_labels.labeled_seed)
        if few_labels.labeled_record is not None:
            chosen = {
                "labeled_fraction": fraction,
                "labeled_count": count,
                "labeled_seed": few_labels.labeled_seed,
            }
            parts = {
                "labeled": [names[i] for i in labeled.labeled],
                "unlabeled": [names[i] for i in labeled.unlabeled],
            }
            records.append(SplitRecord(few_labels.labeled_record, chosen, parts))
    return SplitPlan(names, cut, labeled, records)
