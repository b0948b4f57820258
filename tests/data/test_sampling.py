"""Class-balanced sampling (``data.loader.repeat_threshold``): the repeat factors, the epochs the
sampler draws, and that a fit shows the images of a rare class more often, epoch after epoch."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from tiny import binary_folder, save_pair

from seglab.data import FolderDataModule
from seglab.data.sampling import RepeatFactorSampler, repeat_factors


def test_repeat_factors_follow_the_rarest_class_of_each_image() -> None:
    # class 0 in all four images, class 1 in one (share 1/4), class 2 in two (share 1/2)
    class_pixels = torch.tensor([[5, 3, 0], [5, 0, 2], [5, 0, 2], [5, 0, 0]])
    factors = repeat_factors(class_pixels, threshold=1.0)
    assert factors.tolist() == pytest.approx([2.0, math.sqrt(2), math.sqrt(2), 1.0])
    # at threshold 0.25 only classes in fewer than a quarter of the images would repeat
    assert repeat_factors(class_pixels, threshold=0.25).tolist() == [1.0] * 4
    # an image with no labelled pixel is shown once
    assert repeat_factors(torch.tensor([[0, 0], [1, 0]]), 0.5).tolist() == [1.0, 1.0]


def test_each_epoch_holds_every_image_its_whole_repeats_and_a_fixed_length() -> None:
    factors = torch.tensor([2.5, 1.5, 1.0, 1.0])
    sampler = RepeatFactorSampler(factors, seed=3)
    assert len(sampler) == 2 + 1 + 1 + 1 + 1  # the remainders 0.5 + 0.5 add one image
    totals: Counter[int] = Counter()
    epochs = 400
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        drawn = list(sampler)
        assert len(drawn) == len(sampler)
        counts = Counter(drawn)
        assert counts[0] >= 2 and counts[1] >= 1 and counts[2] == counts[3] == 1
        totals.update(drawn)
    # over many epochs each image is shown its factor times per epoch
    assert totals[0] / epochs == pytest.approx(2.5, abs=0.1)
    assert totals[1] / epochs == pytest.approx(1.5, abs=0.1)


def test_the_draws_depend_on_the_seed_and_the_epoch_only() -> None:
    factors = torch.tensor([3.7, 1.2, 2.4, 1.0, 1.9])

    def epoch(seed: int, number: int) -> list[int]:
        sampler = RepeatFactorSampler(factors, seed)
        sampler.set_epoch(number)
        return list(sampler)

    assert epoch(0, 5) == epoch(0, 5)  # a resumed run draws what an unbroken one would
    assert epoch(0, 5) != epoch(0, 6)
    assert epoch(0, 5) != epoch(1, 5)


def test_bad_repeat_factors_are_refused() -> None:
    with pytest.raises(ValueError, match="repeat factors"):
        RepeatFactorSampler(torch.tensor([1.0, 0.5]), seed=0)


@pytest.fixture
def rare_root(tmp_path: Path) -> Path:
    """Eight train images; the class 'cell' (mask value 255) is in image 0 only."""
    root = tmp_path / "cells"
    for split, count in (("train", 8), ("val", 2)):
        for index in range(count):
            mask = np.zeros((8, 8), np.uint8)
            if index == 0:
                mask[:3, :3] = 255
            image = np.full((8, 8, 3), index * 20, np.uint8)
            save_pair(root, split, f"im{index}", image, mask)
    return root


class NameRecorder(pl.LightningModule):
    """Trains nothing of note; records the names of the training images of each epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[list[str]] = []

    def on_train_epoch_start(self) -> None:
        self.seen.append([])

    def training_step(self, batch, batch_index):
        self.seen[-1].extend(Path(name).stem for name in batch[2])
        return (self.weight * batch[0].mean()) ** 2

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit_names(datamodule: FolderDataModule, epochs: int) -> list[list[str]]:
    model = NameRecorder()
    pl.seed_everything(7)
    trainer = pl.Trainer(
        max_epochs=epochs,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(model, datamodule=datamodule)
    return model.seen


def test_a_fit_shows_the_rare_class_image_more_often_and_draws_anew_each_epoch(
    rare_root: Path,
) -> None:
    epochs = fit_names(binary_folder(rare_root, loader={"repeat_threshold": 1.0}), epochs=6)
    # 'cell' is in 1 of 8 images: im0 is shown sqrt(8) = 2.83 times an epoch, the others once
    for names in epochs:
        counts = Counter(names)
        assert len(names) == 7 + 2 + 1
        assert counts["im0"] in (2, 3)
        assert all(counts[f"im{index}"] == 1 for index in range(1, 8))
    # Lightning hands the sampler each epoch's number: the orders differ from epoch to epoch
    assert len({tuple(names) for names in epochs}) == len(epochs)
    # without a threshold, each image once per epoch
    plain = fit_names(binary_folder(rare_root, loader={"repeat_threshold": None}), epochs=1)
    assert sorted(plain[0]) == [f"im{index}" for index in range(8)]


@pytest.mark.parametrize("threshold", [0, -0.1, 1.5])
def test_a_bad_repeat_threshold_names_the_key(rare_root: Path, threshold: float) -> None:
    with pytest.raises(ValueError, match=rf"data.loader.repeat_threshold={threshold}"):
        binary_folder(rare_root, loader={"repeat_threshold": threshold})
