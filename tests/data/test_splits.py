"""The split plan (`seglab.data.splits`): every cut of the train split from the data settings,
checked against partitions and hash orders worked out here, and the one record format."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest

from seglab.data.labels import FewLabelsSettings
from seglab.data.splits import SplitSettings, cuts, plan_splits, write_record

ALL_LABELLED = FewLabelsSettings()

NAMES = [f"{group}_{index:02d}" for group in ("seqA", "seqB", "seqC") for index in range(4)]


def rank(purpose: str, seed: int, names: list[str]) -> list[int]:
    """The order the plan deals samples in, from its documented hash of (purpose, seed, name)."""

    def key(index: int) -> bytes:
        text = f"seglab.{purpose}/{seed}/{names[index]}".encode()
        return hashlib.blake2b(text, digest_size=8).digest()

    return sorted(range(len(names)), key=key)


def test_the_folds_partition_the_train_split_dealt_in_hash_order() -> None:
    folds, seed = 5, 3
    order = rank("folds", seed, NAMES)
    vals = []
    for fold in range(folds):
        settings = SplitSettings(folds=folds, fold=fold, fold_seed=seed)
        plan = plan_splits(settings, ALL_LABELLED, NAMES)
        train, val = plan.indices("train"), plan.indices("val")
        assert val == sorted(order[fold::folds]), "the ranked samples are dealt in turn"
        assert train == [index for index in range(len(NAMES)) if index not in val]
        assert plan.indices("test") is None and plan.labeled is None
        vals.append(set(val))
    assert sum(map(len, vals)) == len(NAMES) and set().union(*vals) == set(range(len(NAMES)))
    assert sorted(map(len, vals)) == [2, 2, 2, 3, 3]


def test_a_val_share_and_a_holdout_cut_what_their_settings_name() -> None:
    share = plan_splits(SplitSettings(val_fraction=0.25, split_seed=1), ALL_LABELLED, NAMES)
    assert share.indices("val") == sorted(rank("split", 1, NAMES)[:3])
    held = plan_splits(SplitSettings(holdout=["seqB", "seqC_03"]), ALL_LABELLED, NAMES)
    assert [NAMES[i] for i in held.indices("val")] == [*NAMES[4:8], "seqC_03"]
    assert [NAMES[i] for i in held.indices("train")] == [*NAMES[:4], *NAMES[8:11]]


def test_the_labelled_subset_comes_from_the_samples_trained_on() -> None:
    settings = SplitSettings(holdout="seqA")
    labels = FewLabelsSettings(labeled_count=3, labeled_seed=2)
    plan = plan_splits(settings, labels, NAMES)
    trained = list(range(4, len(NAMES)))
    ranked = [index for index in rank("labeled", 2, NAMES) if index in trained]
    assert plan.indices("train") == sorted(ranked[:3])
    assert plan.unlabeled == sorted(ranked[3:])
    assert plan.indices("val") == [0, 1, 2, 3]
    alone = plan_splits(dataclasses.replace(settings, holdout=None), labels, NAMES)
    assert alone.indices("val") is None, "the run validates on its val split"
    assert sorted(alone.indices("train") + alone.unlabeled) == list(range(len(NAMES)))


def test_each_cut_writes_one_record_in_the_format_runs_read(tmp_path: Path) -> None:
    names = ["a_0", "a_1", "b_0"]
    settings = SplitSettings(holdout="b", holdout_record=tmp_path / "holdout.json")
    labels = FewLabelsSettings(labeled_fraction=0.5, labeled_record=tmp_path / "labeled.json")
    for record in plan_splits(settings, labels, names).records:
        write_record(record)
    assert (tmp_path / "holdout.json").read_text() == (
        '{\n "holdout": [\n  "b"\n ],\n "val": [\n  "b_0"\n ],\n "train": [\n  "a_0",\n'
        '  "a_1"\n ]\n}\n'
    )
    # half of the two samples trained on keeps its mask: the first in hash order
    kept, other = (names[i] for i in [i for i in rank("labeled", 0, names) if i < 2])
    assert (tmp_path / "labeled.json").read_text() == (
        '{\n "labeled_fraction": 0.5,\n "labeled_count": null,\n "labeled_seed": 0,\n'
        f' "labeled": [\n  "{kept}"\n ],\n "unlabeled": [\n  "{other}"\n ]\n}}\n'
    )


def test_nothing_cut_reads_no_names_and_records_nothing(tmp_path: Path) -> None:
    settings = SplitSettings(folds_record=tmp_path / "folds.json")
    assert not cuts(settings, ALL_LABELLED, "train") and not cuts(settings, ALL_LABELLED, "val")
    plan = plan_splits(settings, ALL_LABELLED, [])
    assert [plan.indices(split) for split in ("train", "val", "test")] == [None] * 3
    assert plan.records == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"holdout": ["a", "b"]},
            r"^data\.splits\.holdout=\[a,b\] and data\.splits\.folds=3 both choose",
        ),
        (
            {"val_fraction": 0.2},
            r"^data\.splits\.val_fraction=0\.2 and data\.splits\.folds=3 both choose",
        ),
    ],
)
def test_two_settings_choosing_the_val_samples_are_refused_naming_both(
    options: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        SplitSettings(folds=3, fold=0, **options)
    # settings changed later are checked again
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(SplitSettings(folds=3, fold=0), **options)
