"""Which keyword arguments a ``_target_`` reads (seglab/config/target_arguments.py), from
classes and functions written here, and from targets seglab's configs name."""

from __future__ import annotations

from typing import Any

import pytest

from seglab.config.target_arguments import accepted_arguments


def make_writer(**kwargs: Any) -> dict[str, Any]:
    return kwargs


class Base:
    def __init__(self, depth: int, *, width: int = 8) -> None:
        self.depth, self.width = depth, width


class HandsOptionsToParent(Base):
    def __init__(self, name: str, **options: Any) -> None:
        super().__init__(**options)
        self.name = name


class HandsKwargsElsewhere:
    def __init__(self, name: str, **kwargs: Any) -> None:
        self.writer = make_writer(**kwargs)


class ReadsOneKeyThenParent(Base):
    def __init__(self, **options: Any) -> None:
        self.mode = options.pop("mode", "multiclass")
        super().__init__(**options)


class ReadsAKeyByVariable(Base):
    def __init__(self, key: str, **options: Any) -> None:
        self.value = options.get(key)
        super().__init__(**options)


class IgnoresKwargs:
    def __init__(self, name: str, **kwargs: Any) -> None:
        self.name = name


class RefusesKwargs:
    def __init__(self, name: str, **kwargs: Any) -> None:
        if kwargs:
            raise TypeError(f"unexpected {sorted(kwargs)}")
        self.name = name


class NoInitOfItsOwn(HandsOptionsToParent):
    pass


def plain(a: int, b: int = 2, *args: int, c: int = 3) -> int:
    return a + b + c


def passes_kwargs_on(a: int, **kwargs: Any) -> dict[str, Any]:
    return make_writer(a=a, **kwargs)


def reads_kwargs(a: int, **kwargs: Any) -> int:
    return a + kwargs.get("extra", 0)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        # **options go to super().__init__: the parent's arguments are read too
        (HandsOptionsToParent, {"name", "depth", "width"}),
        (NoInitOfItsOwn, {"name", "depth", "width"}),
        (ReadsOneKeyThenParent, {"mode", "depth", "width"}),
        (IgnoresKwargs, {"name"}),
        (RefusesKwargs, {"name"}),
        (plain, {"a", "b", "c"}),
        (reads_kwargs, {"a", "extra"}),
        # **kwargs handed anywhere else: any key may be read
        (HandsKwargsElsewhere, None),
        (ReadsAKeyByVariable, None),
        (passes_kwargs_on, None),
    ],
)
def test_accepted_arguments(target: Any, expected: set[str] | None) -> None:
    accepted = accepted_arguments(target)
    assert (None if accepted is None else set(accepted)) == expected


def test_a_target_without_a_signature_accepts_anything() -> None:
    assert accepted_arguments(dict) is None


def test_targets_of_seglab_configs() -> None:
    import pytorch_lightning as pl
    import torch

    from seglab.data import FolderDataModule

    assert {"max_epochs", "gradient_clip_val"} <= accepted_arguments(pl.Trainer)
    assert "max_epoch" not in accepted_arguments(pl.Trainer)
    assert "betas" in accepted_arguments(torch.optim.AdamW)
    assert "betas" not in accepted_arguments(torch.optim.SGD)
    # its own keys, and those of SegmentationDataModule it hands **options to
    assert {"root", "splits", "loader", "augment", "layout", "few_labels"} <= accepted_arguments(
        FolderDataModule
    )
