"""The base class every seglab datamodule derives from.

Subclasses only say how to build one split (`_build_dataset`); checking the class metadata,
caching the splits, cutting the train split into cross-validation folds and making the
dataloaders happens here, once, so that every dataset is checked and loaded the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from pytorch_lightning.utilities import CombinedLoader
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler, Subset, default_collate

from seglab.data.folds import FoldSplit, check_folds, split_train, write_record
from seglab.data.labels import FewLabels, LabeledSplit
from seglab.data.sampling import (
    RepeatFactorSampler,
    check_repeat_threshold,
    repeat_factors,
)
from seglab.data.transforms import eval_transform
from seglab.task_modes import DEFAULT_MODE, MODES

log = logging.getLogger(__name__)

#: What every dataset item is: ``(image, mask, name)``; the name says where the sample comes
#: from (a file path, or a generator index), so that an error in training can point at it.
Sample = tuple[Tensor, Tensor, str]
#: What every dataloader yields: the stacked images and masks and the samples' names.
Batch = tuple[Tensor, Tensor, list[str]]

# ImageNet's normalisation: what a checkpoint whose data config names no mean/std was using
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SPLITS = ("train", "val", "test")
_STAGE_SPLITS = {
    "fit": ("train", "val"),
    "validate": ("val",),
    "test": ("test",),
    "predict": ("test",),
}


def count_class_pixels(mask: Tensor, num_classes: int) -> Tensor:
    """Labelled pixels of each class in one mask: ``(H, W)`` class indices are counted per
    class; a multilabel ``(num_classes, H, W)`` mask counts each channel's positive pixels."""
    if mask.dim() == 3:
        return (mask == 1).flatten(1).sum(1)
    labelled = mask[(mask >= 0) & (mask < num_classes)]
    return torch.bincount(labelled, minlength=num_classes)


class DatasetError(ValueError):
    """A problem with the files of a dataset (missing, unreadable, inconsistent), or a setting
    they cannot satisfy (more folds than training samples), found at setup.

    Its message names the file or folder and what to do; ``seglab.build`` reports it as a
    one-line error before training starts.
    """


def default_palette(num_classes: int) -> list[list[int]]:
    """The PASCAL VOC colour map: distinct, reproducible colours for any class count.

    Each class index's bits are spread over the high bits of R, G and B, so neighbouring
    indices get clearly different colours and index 0 (usually background) is black.
    """
    palette = []
    for index in range(num_classes):
        rgb = [0, 0, 0]
        code = index
        for shift in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((code >> channel) & 1) << shift
            code >>= 3
        palette.append(rgb)
    return palette


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
        folds: K >= 2 cuts the train split into K folds (`seglab.data.folds`): the run
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
            sparse_labels, sparse_points: learning from few labels (`FewLabels`): the share
            or number of training samples (of the training folds) that keep their masks, the
            seed that picks them, the JSON file they are recorded in, more unlabelled images,
            and sparse training masks (`seglab.data.sparse`). None, None, ..., None: every
            training sample keeps its full mask.
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
        self.folds = None if folds is None else int(folds)
        self.fold = None if fold is None else int(fold)
        self.fold_seed = int(fold_seed)
        self.folds_record = None if folds_record is None else Path(folds_record)
        self.mode = str(mode)
        self.repeat_threshold = check_repeat_threshold(repeat_threshold)
        self._check_metadata()
        self.few_labels = FewLabels(
            labeled_fraction,
            labeled_count,
            labeled_seed,
            labeled_record,
            unlabeled_dir,
            sparse_labels,
            sparse_points,
            self.num_classes,
            self.ignore_index,
        )
        self.palette = (
            default_palette(self.num_classes)
            if palette is None
            else [[int(value) for value in rgb] for rgb in palette]
        )
        self._check_palette()
        self._datasets: dict[str, Dataset] = {}
        self._whole: dict[str, Dataset] = {}
        self._fold_split: FoldSplit | None = None
        self._fold_names: list[str] = []

    def _check_metadata(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"data.mode={self.mode} is not one of: {', '.join(MODES)}")
        if len(self.classes) != self.num_classes:
            raise ValueError(
                f"data.num_classes={self.num_classes} but data.classes lists "
                f"{len(self.classes)} names {self.classes}; they must agree"
            )
        if 0 <= self.ignore_index < self.num_classes:
            raise ValueError(
                f"data.ignore_index={self.ignore_index} is a valid class index "
                f"(0..{self.num_classes - 1}, {self.classes[self.ignore_index]!r}); void pixels "
                "need a value outside the classes, e.g. 255 or -100"
            )
        if self.in_channels not in (1, 3):
            raise ValueError(
                f"data.in_channels={self.in_channels} must be 1 (grayscale) or 3 (RGB)"
            )
        for key, values in (("mean", self.mean), ("std", self.std)):
            if len(values) != self.in_channels:
                raise ValueError(
                    f"data.{key}={values} must have one value per image channel "
                    f"(data.in_channels={self.in_channels})"
                )
        if any(value <= 0 for value in self.std):
            raise ValueError(f"data.std={self.std} must be positive")
        for key in ("batch_size", "eval_batch_size"):
            if getattr(self, key) <= 0:
                raise ValueError(f"data.{key}={getattr(self, key)} must be positive")
        if self.num_workers < 0:
            raise ValueError(f"data.num_workers={self.num_workers} must be >= 0")
        check_folds(self.folds, self.fold)

    def _check_palette(self) -> None:
        if len(self.palette) != self.num_classes:
            raise ValueError(
                f"data.palette has {len(self.palette)} colours but data.num_classes="
                f"{self.num_classes}; give one RGB triple per class"
            )
        for index, rgb in enumerate(self.palette):
            if len(rgb) != 3 or not all(0 <= value <= 255 for value in rgb):
                raise ValueError(
                    f"data.palette[{index}]={rgb} (class {self.classes[index]!r}) must be an "
                    "RGB triple of integers in 0..255"
                )

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
        sample's fold and what the folds record lists. By default the names the items carry;
        datasets on disk override it to name files without reading them."""
        dataset = self._whole_split(split)
        return [dataset[index][2] for index in range(len(dataset))]

    def validates_on_train(self) -> bool:
        """Whether the run validates on part of the train split and trains on the rest (a
        cross-validation fold here; subclasses add other cuts), leaving the val split unused."""
        return self.folds is not None

    def source_split(self, split: str) -> str:
        """The split of the dataset that ``split`` reads: the train split for the validation
        samples of a run that `validates_on_train`, else ``split`` itself."""
        return "train" if self.validates_on_train() and split == "val" else split

    def fold_split(self) -> FoldSplit:
        """Indices into the train split of the samples trained on and of those validated on.

        Raises:
            DatasetError: naming the setting (``data.folds``) that the train split cannot meet.
        """
        if self._fold_split is None:
            names = self.sample_names("train")
            try:
                self._fold_split = self._split_train(names)
            except ValueError as error:
                raise DatasetError(str(error)) from None
            self._fold_names = names
        return self._fold_split

    def _split_train(self, names: list[str]) -> FoldSplit:
        """The train split (``names``, in dataset order) cut into the samples trained on and
        those validated on: the cross-validation fold; raises ValueError naming the key."""
        assert self.folds is not None and self.fold is not None, "no cross-validation"
        return split_train(names, self.folds, self.fold, self.fold_seed)

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

    def labeled_split(self) -> LabeledSplit:
        """Indices into the train split of the labelled samples and of the unlabelled ones
        (`FewLabels`), both from the training folds of a cross-validation run.

        Raises:
            DatasetError: naming the key when the labelled subset would be empty or too large.
        """
        names = self.sample_names("train")
        pool = self.fold_split().train if self.validates_on_train() else range(len(names))
        try:
            return self.few_labels.split(names, pool)
        except ValueError as error:
            raise DatasetError(str(error)) from None

    def unlabeled_dataset(self) -> Dataset | None:
        """The unlabelled images (`FewLabels.unlabeled`); None when there are none."""
        if self.few_labels.limited:
            self.labeled_split()
        return self.few_labels.unlabeled(
            self._whole_split("train"),
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
        """The split, or for a run that `validates_on_train` the train split cut in two by
        `fold_split` (for cross-validation, fold ``fold`` as val and the other folds as
        train); the train split keeps only its labelled samples when labels are limited."""
        if split == "train" and self.few_labels.limited:
            return Subset(self._whole_split("train"), self.labeled_split().labeled)
        if not self.validates_on_train() or split == "test":
            return self._whole_split(split)
        indices = self.fold_split()
        if split == "train":
            return Subset(self._whole_split("train"), indices.train)
        return Subset(self._build_evaluation_dataset("train"), indices.val)

    def _whole_split(self, split: str) -> Dataset:
        """``split`` as `_build_dataset` builds it, built once even when folds share it."""
        if split not in self._whole:
            self._whole[split] = self._build_dataset(split)
        return self._whole[split]

    def setup(self, stage: str | None = None) -> None:
        """Build only the splits ``stage`` needs (all of them when None); a cross-validation
        run's fit records the names of its folds in ``folds_record``."""
        for split in _STAGE_SPLITS.get(stage, SPLITS):
            self.dataset(split)
        if stage == "fit" and self.folds is not None and self.folds_record is not None:
            indices = self.fold_split()
            write_record(
                self.folds_record,
                self.folds,
                int(self.fold),
                self.fold_seed,
                train=[self._fold_names[index] for index in indices.train],
                val=[self._fold_names[index] for index in indices.val],
            )
        if stage == "fit" and self.few_labels.limited:
            self.labeled_split()
            self.few_labels.write_record()

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
        """The class-balanced sampler of the train split, or None for a plain shuffle.

        Its draws are seeded from torch's seed, which ``seed_everything`` sets from the run's
        ``seed``, so a run with the same seed draws the same epochs.
        """
        if self.repeat_threshold is None:
            return None
        class_pixels, _ = self.class_pixel_counts("train")
        factors = repeat_factors(class_pixels, self.repeat_threshold)
        log.info(
            "data.repeat_threshold=%s: an epoch shows %.2f times the %d training images",
            self.repeat_threshold,
            float(factors.mean()),
            len(factors),
        )
        return RepeatFactorSampler(factors, torch.initial_seed())

    def val_dataloader(self) -> DataLoader:
        return self._evaluation_dataloader("val")

    def test_dataloader(self) -> DataLoader:
        return self._evaluation_dataloader("test")

    def _evaluation_dataloader(self, split: str) -> DataLoader:
        """The loader of ``split``, which each process of a distributed run scores a share of.

        Lightning's own distributed sampler pads a split whose size the number of processes
        does not divide with repeats of its first images, which would then count twice in the
        confusion matrix summed over the processes. Process ``r`` of ``n`` gets images ``r``,
        ``r + n``, ... instead, none repeated, so one process may run a batch more than
        another: DistributedDataParallel syncs buffers on the first evaluation batch only, and
        the metric states are summed once, when the epoch ends, so no process waits for a
        batch that never comes (a process with no image at all would leave the others waiting
        at that first sync, hence the error for a split smaller than the number of processes).
        The split is sharded even with ``trainer.use_distributed_sampler=false``, whose every
        process would otherwise score the whole split, counting it once per process.
        """
        dataset = self.dataset(split)
        sampler: Sampler | None = None
        # the trainer this datamodule is attached to; None when its loaders are used alone
        shards = self.trainer.distributed_sampler_kwargs if self.trainer is not None else None
        if shards and shards["num_replicas"] > 1:
            if len(dataset) < shards["num_replicas"]:
                raise ValueError(
                    f"the {split} split has {len(dataset)} images but the distributed run has "
                    f"{shards['num_replicas']} processes, each of which needs one; use fewer "
                    "processes (trainer.devices, trainer.num_nodes) or more images"
                )
            sampler = UnrepeatedDistributedSampler(dataset, shuffle=False, **shards)
        return self._dataloader(dataset, self.eval_batch_size, sampler=sampler)

    def _dataloader(
        self,
        dataset: Dataset,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        sampler: Sampler | None = None,
    ) -> DataLoader:
        workers = {}
        if self.num_workers > 0:
            # DataLoader rejects persistent_workers=True without workers.
            workers = {"persistent_workers": self.persistent_workers}
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            collate_fn=self.collate_fn,
            **workers,
        )

    def denormalize(self, images: Tensor) -> Tensor:
        """Undo the normalisation of ``(..., C, H, W)`` images into [0, 1], for drawing."""
        mean = torch.tensor(self.mean, dtype=images.dtype, device=images.device)
        std = torch.tensor(self.std, dtype=images.dtype, device=images.device)
        return (images * std[:, None, None] + mean[:, None, None]).clamp(0.0, 1.0)
