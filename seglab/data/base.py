"""The base class every seglab datamodule derives from.

Subclasses only say how to build one split (`_build_dataset`); checking the class metadata,
caching the splits, reading the parts of the train split that the split plan picks
(`seglab.data.splits`) and making the dataloaders happens here, once, so that every dataset is
checked and loaded the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import CombinedLoader
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler, Subset, default_collate

from seglab.data.labels import FewLabels
from seglab.data.loaders import dataloader, shard_sampler
from seglab.data.metadata import (
    DatasetError,
    check_classes,
    check_normalisation,
    class_palette,
    count_class_pixels,
)
from seglab.data.sampling import RepeatFactorSampler, balanced_sampler, check_repeat_threshold
from seglab.data.splits import SplitPlan, SplitSettings, plan_splits, write_record
from seglab.data.transforms import eval_transform
from seglab.task_modes import DEFAULT_MODE

SPLITS = ("train", "val", "test")
_STAGE_SPLITS = {
    "fit": ("train", "val"),
    "validate": ("val",),
    "test": ("test",),
    "predict": ("test",),
}


class SegmentationDataModule(pl.LightningDataModule):
    """Class metadata, normalisation and dataloaders shared by all segmentation datasets.

    Items of every split are ``(image, mask, name)``: a float32 ``(in_channels, H, W)`` image
    normalised with ``mean``/``std``, an int64 ``(H, W)`` mask of class indices,
    ``ignore_index`` on void (in ``mode`` multilabel an int64 ``(num_classes, H, W)`` mask, 1
    where the pixel has the class, 0 where not, ``ignore_index`` on void), and the sample's
    name (its image file, for files on disk).

    No argument has a default: each dataset's file in ``conf/data/`` holds the values, with
    their comments, and its subclass hands them over, so none is taken silently from here.

    Args:
        classes: class names, index ``i`` naming class ``i``; used for per-class metrics.
        num_classes: number of classes; kept next to ``classes`` so that configs can
            interpolate it, and checked against it.
        ignore_index: mask value for void pixels; must not be a class index.
        palette: one RGB triple (0-255) per class for drawing masks; a fixed distinct palette
            when None.
        mean: per-channel mean the images are normalised with.
        std: per-channel standard deviation the images are normalised with.
        in_channels: channels of the images handed to the model (3 for RGB, 1 for grayscale);
            ``mean`` and ``std`` have one value per channel.
        batch_size: training batch size.
        eval_batch_size: batch size for validation and test; ``batch_size`` when None.
        num_workers: dataloader worker processes; 0 loads in the main process.
        pin_memory: pin batches in page-locked memory for faster host-to-GPU copies.
        persistent_workers: keep workers alive between epochs (only used with workers).
        drop_last: drop the last incomplete training batch, which keeps BatchNorm away from a
            batch of a single sample.
        folds: K >= 2 cuts the train split into K folds (`seglab.data.splits`): the run
            validates on fold ``fold`` and trains on the others, and the dataset's own val
            split is not used; the test split stays as it is. None: no cross-validation.
        fold: the fold validated on, in ``[0, folds)``; None without ``folds``.
        fold_seed: which samples make up each fold; the same seed always gives the same folds.
        folds_record: JSON file the train and val sample names of the fold are written to when
            training sets up; None writes none.
        mode: the run's task mode (``mode``, `seglab.task_modes`): multiclass and binary masks hold
            one class index per pixel, multilabel masks one channel per class. Data configs
            read it from the run (``mode: ${mode}``); multiclass for configs saved before it.
        repeat_threshold: class-balanced sampling (`seglab.data.sampling`): images of classes
            that appear in fewer than this share of the training images are shown more often
            per epoch. None (also for configs saved before it): each image once per epoch.
        labeled_fraction, labeled_count, labeled_seed, labeled_record, unlabeled_dir,
            sparse_labels, sparse_points: learning from few labels: the share or number of
            training samples (of the training folds) that keep their masks, the seed that
            picks them, the JSON file they are recorded in (`seglab.data.splits`), more
            unlabelled images (`FewLabels`), and sparse training masks
            (`seglab.data.sparse`). None, None, ..., None: every training sample keeps its
            full mask.
    """

    # how samples become a batch; datasets of images of different sizes replace it
    collate_fn: Callable[[list[Any]], Any] = staticmethod(default_collate)

    def __init__(
        self,
        classes: Sequence[str],
        num_classes: int,
        ignore_index: int,
        palette: Sequence[Sequence[int]] | None,
        mean: Sequence[float],
        std: Sequence[float],
        in_channels: int,
        batch_size: int,
        eval_batch_size: int | None,
        num_workers: int,
        pin_memory: bool,
        persistent_workers: bool,
        drop_last: bool,
        folds: int | None,
        fold: int | None,
        fold_seed: int,
        folds_record: str | Path | None,
        labeled_fraction: float | None,
        labeled_count: int | None,
        labeled_seed: int,
        labeled_record: str | Path | None,
        unlabeled_dir: str | Path | None,
        sparse_labels: str | None,
        sparse_points: int,
        mode: str = DEFAULT_MODE,
        repeat_threshold: float | None = None,
    ) -> None:
        super().__init__()
        # Hydra hands ListConfig/DictConfig nodes over; plain Python values keep the
        # attributes picklable and comparable.
        self.classes = [str(name) for name in classes]
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.mean = [float(value) for value in mean]
        self.std = [float(value) for value in std]
        self.in_channels = int(in_channels)
        self.batch_size = int(batch_size)
        self.eval_batch_size = self.batch_size if eval_batch_size is None else int(eval_batch_size)
        self.num_workers = int(num_workers)
        self.pin_memory = bool(pin_memory)
        self.persistent_workers = bool(persistent_workers)
        self.drop_last = bool(drop_last)
        self.mode = str(mode)
        self.repeat_threshold = check_repeat_threshold(repeat_threshold)
        self._check_metadata()
        #: the settings of the split plan; subclasses that cut the train split in other ways
        #: replace it (`dataclasses.replace`, which checks them again)
        self.splits = SplitSettings(
            folds=folds,
            fold=fold,
            fold_seed=fold_seed,
            folds_record=folds_record,
            labeled_fraction=labeled_fraction,
            labeled_count=labeled_count,
            labeled_seed=labeled_seed,
            labeled_record=labeled_record,
        )
        self.few_labels = FewLabels(
            labeled_seed,
            unlabeled_dir,
            sparse_labels,
            sparse_points,
            self.num_classes,
            self.ignore_index,
        )
        self.palette = class_palette(palette, self.classes)
        self._datasets: dict[str, Dataset] = {}
        self._whole: dict[str, Dataset] = {}
        self._plan: SplitPlan | None = None

    def _check_metadata(self) -> None:
        check_classes(self.mode, self.classes, self.num_classes, self.ignore_index)
        check_normalisation(self.in_channels, self.mean, self.std)
        for key in ("batch_size", "eval_batch_size"):
            if getattr(self, key) <= 0:
                raise ValueError(f"data.{key}={getattr(self, key)} must be positive")
        if self.num_workers < 0:
            raise ValueError(f"data.num_workers={self.num_workers} must be >= 0")

    def _build_dataset(self, split: str) -> Dataset:
        """Build one split; each subclass knows where its data comes from."""
        raise NotImplementedError(f"{type(self).__name__} must implement _build_dataset")

    def _build_evaluation_dataset(self, split: str) -> Dataset:
        """``split`` as an evaluation reads it, without random training augmentation: a
        validation fold reads the train split so. By default the split as `_build_dataset`
        builds it, which suits datasets that do not augment."""
        return self._whole_split(split)

    def evaluation_dataset(self, split: str) -> Dataset:
        """The whole ``split`` read as evaluation reads images (no random augmentation), e.g.
        the train images that calibrate an INT8 export."""
        return self._build_evaluation_dataset(split)

    def sample_names(self, split: str) -> list[str]:
        """The name of each sample of the whole ``split``, in dataset order: what picks a
        sample's part in the split plan and what its records list. By default the names the
        items carry; datasets on disk override it to name files without reading them."""
        dataset = self._whole_split(split)
        return [dataset[index][2] for index in range(len(dataset))]

    def validates_on_train(self) -> bool:
        """Whether the run validates on part of the train split and trains on the rest (a
        cross-validation fold, held-out groups, a val share), leaving the val split unused."""
        return self.splits.validates_on_train

    def source_split(self, split: str) -> str:
        """The split of the dataset that ``split`` reads: the train split for the validation
        samples of a run that `validates_on_train`, else ``split`` itself."""
        return "train" if self.validates_on_train() and split == "val" else split

    def split_plan(self) -> SplitPlan:
        """How the run cuts its train split (`seglab.data.splits.plan_splits`), made once.

        Raises:
            DatasetError: naming the setting (``data.folds``, ``data.holdout``, ...) that the
                train split cannot meet.
        """
        if self._plan is None:
            names = self.sample_names("train") if self.splits.cuts("train") else []
            try:
                self._plan = plan_splits(self.splits, names)
            except ValueError as error:
                raise DatasetError(str(error)) from None
        return self._plan

    def split_indices(self, split: str) -> list[int] | None:
        """Indices into the train split of the samples ``split`` reads, as the split plan picks
        them; None when ``split`` reads its own split whole."""
        return self.split_plan().indices(split) if self.splits.cuts(split) else None

    def split_unavailable(self, split: str) -> str | None:
        """Why ``split`` cannot be built (e.g. its folder is absent), or None when it can.

        Lets training skip a test split that a dataset does not ship, saying why, instead of
        failing after the fit or silently testing on another split.
        """
        return None

    def training_size(self) -> tuple[str, Any, tuple[int, int]] | None:
        """The config key and value that fix the size of every training image, with that
        ``(height, width)``; None when training images keep their own sizes.

        Lets a run check the size against the model before reading any data.
        """
        return None

    def class_pixel_counts(self, split: str) -> tuple[Tensor, Tensor]:
        """Per image of ``split``: labelled pixels of each class, and all its pixels.

        Returns ``(num_images, num_classes)`` and ``(num_images,)`` int64 tensors, counted on
        the masks as the dataset returns them; datasets with random training transforms
        override this to count their files instead.
        """
        dataset = self.dataset(split)
        class_pixels = torch.zeros(len(dataset), self.num_classes, dtype=torch.int64)
        image_pixels = torch.zeros(len(dataset), dtype=torch.int64)
        for index in range(len(dataset)):
            mask = dataset[index][1]
            class_pixels[index] = count_class_pixels(mask, self.num_classes)
            image_pixels[index] = mask.shape[-2] * mask.shape[-1]
        return class_pixels, image_pixels

    def dataset(self, split: str) -> Dataset:
        """The dataset of ``split``, built on first use and then reused."""
        if split not in SPLITS:
            raise ValueError(f"split={split!r} is not one of {SPLITS}")
        if split not in self._datasets:
            self._datasets[split] = self._build_split(split)
        return self._datasets[split]

    def unlabeled_dataset(self) -> Dataset | None:
        """The unlabelled images (`FewLabels.unlabeled`); None when there are none."""
        unlabeled = self.split_plan().unlabeled if self.splits.labels_limited else []
        return self.few_labels.unlabeled(
            self._whole_split("train"),
            unlabeled,
            self.unlabeled_transform(),
            self.in_channels,
            self.ignore_index,
        )

    def unlabeled_transform(self) -> Any:
        """How an image of ``unlabeled_dir`` and its void mask are transformed: the training
        transform of datasets that read files; by default, normalisation alone."""
        return eval_transform(self.mean, self.std)

    def pair_unlabeled(self, batch_size: int, mode: str) -> None:
        """Make every training batch a ``{"labeled": ..., "unlabeled": ...}`` pair: a batch of
        ``batch_size`` unlabelled images drawn with each labelled batch, the two loaders
        combined by Lightning's ``CombinedLoader`` in ``mode`` (``max_size_cycle``: the epoch
        runs through the longer loader, cycling the shorter; ``min_size``: the shorter)."""
        self.few_labels.loading = (int(batch_size), mode)

    def _build_split(self, split: str) -> Dataset:
        """The split, or the part of the train split that the split plan picks for it (for
        cross-validation, fold ``fold`` as val and the labelled samples of the other folds as
        train); validation samples are read as evaluation reads them."""
        indices = self.split_indices(split)
        if indices is None:
            return self._whole_split(split)
        if split == "val":
            return Subset(self._build_evaluation_dataset("train"), indices)
        return Subset(self._whole_split("train"), indices)

    def _whole_split(self, split: str) -> Dataset:
        """``split`` as `_build_dataset` builds it, built once even when folds share it."""
        if split not in self._whole:
            self._whole[split] = self._build_dataset(split)
        return self._whole[split]

    def setup(self, stage: str | None = None) -> None:
        """Build only the splits ``stage`` needs (all of them when None), check them
        (`check_splits`), and at fit write the records of the split plan (``folds_record``,
        ``labeled_record``, ...)."""
        for split in _STAGE_SPLITS.get(stage, SPLITS):
            self.dataset(split)
        self.check_splits(stage)
        if stage == "fit" and self.splits.cuts("train"):
            for record in self.split_plan().records:
                write_record(record)

    def check_splits(self, stage: str | None) -> None:
        """Check the splits that setup built, before the split plan is recorded; datasets
        whose files can disagree with their config check their labels here."""

    def train_dataloader(self) -> DataLoader | CombinedLoader:
        dataset = self.dataset("train")
        if self.drop_last and len(dataset) < self.batch_size:
            raise ValueError(
                f"data.batch_size={self.batch_size} exceeds the {len(dataset)} training "
                "samples; with data.drop_last=true every epoch would be empty"
            )
        sampler = self._repeat_sampler()
        loader = self._dataloader(
            dataset,
            self.batch_size,
            shuffle=sampler is None,
            drop_last=self.drop_last,
            sampler=sampler,
        )
        if self.few_labels.loading is None:
            return loader
        batch_size, mode = self.few_labels.loading
        unlabeled = self.unlabeled_dataset()
        if unlabeled is None or (self.drop_last and len(unlabeled) < batch_size):
            raise ValueError(
                f"the unlabelled batch size {batch_size} exceeds the "
                f"{0 if unlabeled is None else len(unlabeled)} unlabelled images; with "
                "data.drop_last=true every epoch would be empty"
            )
        pair = {
            "labeled": loader,
            "unlabeled": self._dataloader(
                unlabeled, batch_size, shuffle=True, drop_last=self.drop_last
            ),
        }
        return CombinedLoader(pair, mode=mode)

    def _repeat_sampler(self) -> RepeatFactorSampler | None:
        """The class-balanced sampler of the train split, or None for a plain shuffle."""
        if self.repeat_threshold is None:
            return None
        return balanced_sampler(self.class_pixel_counts("train")[0], self.repeat_threshold)

    def val_dataloader(self) -> DataLoader:
        return self._evaluation_dataloader("val")

    def test_dataloader(self) -> DataLoader:
        return self._evaluation_dataloader("test")

    def _evaluation_dataloader(self, split: str) -> DataLoader:
        """The loader of ``split``, which each process of a distributed run scores a share of
        (`seglab.data.loaders.shard_sampler`)."""
        dataset = self.dataset(split)
        # the trainer this datamodule is attached to; None when its loaders are used alone
        shards = self.trainer.distributed_sampler_kwargs if self.trainer is not None else None
        sampler = shard_sampler(dataset, split, shards)
        return self._dataloader(dataset, self.eval_batch_size, sampler=sampler)

    def _dataloader(
        self,
        dataset: Dataset,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        sampler: Sampler | None = None,
    ) -> DataLoader:
        options = (self.num_workers, self.pin_memory, self.persistent_workers, self.collate_fn)
        return dataloader(dataset, batch_size, *options, shuffle, drop_last, sampler)

    def denormalize(self, images: Tensor) -> Tensor:
        """Undo the normalisation of ``(..., C, H, W)`` images into [0, 1], for drawing."""
        mean = torch.tensor(self.mean, dtype=images.dtype, device=images.device)
        std = torch.tensor(self.std, dtype=images.dtype, device=images.device)
        return (images * std[:, None, None] + mean[:, None, None]).clamp(0.0, 1.0)
