"""The base class every seglab datamodule derives from.

Subclasses only say how to build one split (`_build_dataset`); checking the class metadata,
caching the splits, reading the parts of the train split that the split plan picks
(`seglab.data.splits`) and making the dataloaders happens here, once, so that every dataset is
checked and loaded the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import CombinedLoader
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler, Subset, default_collate

from seglab.data.images import ImageReader
from seglab.data.label_map import UncoveredValues
from seglab.data.labels import FewLabels, FewLabelsSettings
from seglab.data.loaders import LoaderSettings, dataloader, shard_sampler
from seglab.data.metadata import (
    DatasetError,
    check_classes,
    check_normalisation,
    class_palette,
    count_class_pixels,
)
from seglab.data.sampling import RepeatFactorSampler, balanced_sampler
from seglab.data.settings import settings_of
from seglab.data.splits import SplitPlan, SplitSettings, cuts, plan_splits, write_record
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
    The grouped options (``loader``, ``splits``, ``few_labels``) may each be given as their
    settings class or as a mapping of its keys (the config node Hydra hands over).

    Args:
        classes: class names, index ``i`` naming class ``i``; used for per-class metrics.
        num_classes: number of classes; kept next to ``classes`` so that configs can
            interpolate it, and checked against it.
        ignore_index: mask value for void pixels; must not be a class index.
        palette: one RGB triple (0-255) per class for drawing masks; a fixed distinct palette
            when None.
        mean: per-channel mean the images are normalised with.
        std: per-channel standard deviation the images are normalised with.
        in_channels: channels of the images handed to the model (3 for RGB, 1 for grayscale,
            or the band count of multi-band images); ``mean`` and ``std`` have one value per
            channel.
        loader: ``data.loader``: batch sizes, workers, class-balanced sampling
            (`seglab.data.loaders.LoaderSettings`).
        splits: ``data.splits``: which samples of the train split are validated on, e.g. a
            cross-validation fold (`seglab.data.splits.SplitSettings`); the test split stays
            as it is.
        few_labels: ``data.few_labels``: the labelled subset, more unlabelled images and
            sparse training masks (`seglab.data.labels.FewLabelsSettings`).
        mode: the run's task mode (``mode``, `seglab.task_modes`): multiclass and binary masks
            hold one class index per pixel, multilabel masks one channel per class. Data
            configs read it from the run (``mode: ${mode}``); multiclass for configs saved
            before it.
        max_value: what integer image files are divided by before normalisation; None:
            their type's largest value (`seglab.data.images.ImageReader`).
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
        loader: LoaderSettings | Mapping[str, Any],
        splits: SplitSettings | Mapping[str, Any],
        few_labels: FewLabelsSettings | Mapping[str, Any],
        mode: str = DEFAULT_MODE,
        max_value: float | None = None,
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
        self.mode = str(mode)
        check_classes(self.mode, self.classes, self.num_classes, self.ignore_index)
        check_normalisation(self.in_channels, self.mean, self.std)
        #: how image files are read: their bands, and the scale of their values
        self.image_reader = ImageReader(
            self.in_channels, None if max_value is None else float(max_value)
        )
        self.loader = settings_of(LoaderSettings, loader, "loader")
        #: the settings of the split plan
        self.splits = settings_of(SplitSettings, splits, "splits")
        self.few_labels = FewLabels(
            settings_of(FewLabelsSettings, few_labels, "few_labels"),
            self.num_classes,
            self.ignore_index,
        )
        self.palette = class_palette(palette, self.classes)
        self._datasets: dict[str, Dataset] = {}
        self._whole: dict[str, Dataset] = {}
        self._plan: SplitPlan | None = None

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
            DatasetError: naming the setting (``data.splits.folds``, ``data.splits.holdout``,
                ...) that the train split cannot meet.
        """
        if self._plan is None:
            names = self.sample_names("train") if self.cuts("train") else []
            try:
                self._plan = plan_splits(self.splits, self.few_labels.settings, names)
            except ValueError as error:
                raise DatasetError(str(error)) from None
        return self._plan

    def split_indices(self, split: str) -> list[int] | None:
        """Indices into the train split of the samples ``split`` reads, as the split plan picks
        them; None when ``split`` reads its own split whole."""
        return self.split_plan().indices(split) if self.cuts(split) else None

    def cuts(self, split: str) -> bool:
        """Whether ``split`` reads only part of the train split (`seglab.data.splits.cuts`)."""
        return cuts(self.splits, self.few_labels.settings, split)

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

    def unnormalised_images(self, split: str) -> Iterator[Tensor]:
        """The ``(C, H, W)`` float images of ``split`` (of the part of the train split it
        reads) before normalisation, scaled as the model's inputs are: what ``seglab-data
        stats`` computes ``data.mean`` and ``data.std`` from. By default the evaluation
        images with their normalisation undone; datasets on disk read their files."""
        dataset = self._build_evaluation_dataset(self.source_split(split))
        indices = self.split_indices(split)
        mean, std = torch.tensor(self.mean)[:, None, None], torch.tensor(self.std)[:, None, None]
        for index in range(len(dataset)) if indices is None else indices:
            yield dataset[index][0] * std + mean

    def survey(self, split: str) -> tuple[Tensor, Tensor, UncoveredValues]:
        """`class_pixel_counts`, and the raw mask values the label map does not cover
        (``seglab-data stats``); datasets that read mask files override it, the others have
        no raw values to leave out."""
        return (*self.class_pixel_counts(split), UncoveredValues())

    def dataset(self, split: str) -> Dataset:
        """The dataset of ``split``, built on first use and then reused."""
        if split not in SPLITS:
            raise ValueError(f"split={split!r} is not one of {SPLITS}")
        if split not in self._datasets:
            self._datasets[split] = self._build_split(split)
        return self._datasets[split]

    def unlabeled_dataset(self) -> Dataset | None:
        """The unlabelled images (`FewLabels.unlabeled`); None when there are none."""
        limited = self.few_labels.settings.labels_limited
        unlabeled = self.split_plan().unlabeled if limited else []
        return self.few_labels.unlabeled(
            self._whole_split("train"),
            unlabeled,
            self.unlabeled_transform(),
            self.image_reader,
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
        if stage == "fit" and self.cuts("train"):
            for record in self.split_plan().records:
                write_record(record)

    def check_splits(self, stage: str | None) -> None:
        """Check the splits that setup built, before the split plan is recorded; datasets
        whose files can disagree with their config check their labels here."""

    def train_dataloader(self) -> DataLoader | CombinedLoader:
        dataset, settings = self.dataset("train"), self.loader
        if settings.drop_last and len(dataset) < settings.batch_size:
            raise ValueError(
                f"data.loader.batch_size={settings.batch_size} exceeds the {len(dataset)} "
                "training samples; with data.loader.drop_last=true every epoch would be empty"
            )
        sampler = self._repeat_sampler()
        loader = self._dataloader(
            dataset,
            settings.batch_size,
            shuffle=sampler is None,
            drop_last=settings.drop_last,
            sampler=sampler,
        )
        if self.few_labels.loading is None:
            return loader
        batch_size, mode = self.few_labels.loading
        unlabeled = self.unlabeled_dataset()
        if unlabeled is None or (settings.drop_last and len(unlabeled) < batch_size):
            raise ValueError(
                f"the unlabelled batch size {batch_size} exceeds the "
                f"{0 if unlabeled is None else len(unlabeled)} unlabelled images; with "
                "data.loader.drop_last=true every epoch would be empty"
            )
        pair = {
            "labeled": loader,
            "unlabeled": self._dataloader(
                unlabeled, batch_size, shuffle=True, drop_last=settings.drop_last
            ),
        }
        return CombinedLoader(pair, mode=mode)

    def _repeat_sampler(self) -> RepeatFactorSampler | None:
        """The class-balanced sampler of the train split, or None for a plain shuffle."""
        threshold = self.loader.repeat_threshold
        if threshold is None:
            return None
        return balanced_sampler(self.class_pixel_counts("train")[0], threshold)

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
        return self._dataloader(dataset, self.loader.eval_batch_size, sampler=sampler)

    def _dataloader(
        self,
        dataset: Dataset,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        sampler: Sampler | None = None,
    ) -> DataLoader:
        return dataloader(
            dataset, batch_size, self.loader, self.collate_fn, shuffle, drop_last, sampler
        )

    def denormalize(self, images: Tensor) -> Tensor:
        """Undo the normalisation of ``(..., C, H, W)`` images into [0, 1], for drawing."""
        mean = torch.tensor(self.mean, dtype=images.dtype, device=images.device)
        std = torch.tensor(self.std, dtype=images.dtype, device=images.device)
        return (images * std[:, None, None] + mean[:, None, None]).clamp(0.0, 1.0)
