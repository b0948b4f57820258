"""Any dataset stored as image files with a mask file of the same stem: the datamodule, and
the dataset that reads one split's pairs.

Where the files are and how they pair is the layout's (`seglab.data.layout`), how a mask file
becomes classes the decoder's (`seglab.data.masks`), and which part of the train split a run
trains and validates on the split plan's (`seglab.data.splits`; ``val_fraction`` validates on a
share of a dataset without split folders). Every split is checked at setup (`scan_pairs`), and
so are the labels it holds (`seglab.data.label_checks`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import tv_tensors

from seglab.data.base import SegmentationDataModule
from seglab.data.images import ImageReader
from seglab.data.label_checks import LabelMap, check_classes_present, check_void_share
from seglab.data.label_map import UncoveredValues, label_table
from seglab.data.layout import FolderLayout, LayoutSettings
from seglab.data.masks import MaskDecoder, align_to_mask, mask_decoder
from seglab.data.metadata import DatasetError, Sample
from seglab.data.scan import READ_ERRORS, MaskFiles, ScanResult, mask_name, scan_pairs
from seglab.data.settings import settings_of
from seglab.data.sparse import SparseMaskReader
from seglab.data.transforms import AugmentSettings, eval_transform, pad_collate, train_transform

# what a dataset reads images with unless told: 8-bit images converted to RGB
RGB_READER = ImageReader()


def _changed_since_scan(path: Path, kind: str, error: Exception) -> DatasetError:
    """A file that read at setup (`scan_pairs`) and fails in training: named, with the way out."""
    return DatasetError(
        f"{path}: unreadable {kind} ({type(error).__name__}: {error}); it passed the check at "
        "setup, so it changed or became unreachable since: restore or remove it (and its "
        "pair), then resume from the run's last.ckpt"
    )


class SegmentationFolder(Dataset):
    """Image/mask pairs read from disk and transformed together.

    Args:
        pairs: ``(image path, mask)`` of each sample: the mask file, or in multilabel mode
            the mask files of every class.
        read_mask: decodes a mask into ``(H, W)`` int64 class indices, or ``(num_classes, H,
            W)`` channels in multilabel mode.
        transform: called as ``transform(image, mask)`` on a ``tv_tensors.Image`` (uint8 for
            8-bit images, else float32 already scaled) and an int64 ``tv_tensors.Mask``;
            returns the float image and the mask.
        read_image: reads an image file (`seglab.data.images.ImageReader`: 8-bit images
            converted to RGB or grayscale, others with their own bands).
        resize_images: an image of another size than its mask is resized to the mask's size
            (bilinear, antialiased) before the transform; the mask never is.
    """

    def __init__(
        self,
        pairs: Sequence[tuple[Path, MaskFiles]],
        read_mask: Callable[[Any], np.ndarray],
        transform: Callable[[Any, Any], tuple[Any, Any]],
        read_image: Callable[[Path], Tensor] = RGB_READER,
        resize_images: bool = False,
    ) -> None:
        self.pairs = list(pairs)
        self.read_mask = read_mask
        self.transform = transform
        self.read_image = read_image
        self.resize_images = resize_images

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Sample:
        image_path, mask = self.pairs[index]
        try:
            pixels = self.read_image(image_path)
        except READ_ERRORS as error:
            raise _changed_since_scan(image_path, "image", error) from error
        try:
            labels = torch.from_numpy(self.read_mask(mask))
        except DatasetError:
            raise
        except READ_ERRORS as error:
            raise _changed_since_scan(mask_name(mask), "mask", error) from error
        if self.resize_images:
            pixels = align_to_mask(pixels, labels.shape[-2:])
        image, labels = self.transform(tv_tensors.Image(pixels), tv_tensors.Mask(labels))
        return image.as_subclass(Tensor), labels.as_subclass(Tensor), str(image_path)


class FolderDataModule(SegmentationDataModule):
    """Datamodule of image files with one mask file per image, in any folder layout.

    No argument has a default but those of configs saved before they existed:
    ``conf/data/folder.yaml`` holds the values with their comments (``conf/data/camvid.yaml``
    changes some for CamVid).

    Args:
        root: the dataset folder.
        layout: ``data.layout``: where the files are below ``root`` and how they pair
            (`seglab.data.layout.LayoutSettings`); in ``mode`` multilabel ``mask_dir`` holds
            one folder per class, named as in ``classes``, of that class's masks.
        augment: ``data.augment``: the random training augmentation
            (`seglab.data.transforms.AugmentSettings`).
        mask_values: raw mask value of each class, in class order (e.g. ``[0, 255]`` for
            binary masks saved as 0/255); None means the values are the class indices. In
            ``mode`` multilabel the two raw values [no, yes] of every class mask (None:
            ``[0, 1]``).
        palette: RGB colour of each class: maps RGB masks to classes (unless ``label_map``
            is set), and draws masks.
        void_colours: RGB colours of void pixels in RGB masks.
        eval_scale: factor the val/test images are resized by before the model; their masks
            keep the labels' resolution, and logits are upsampled to it for the metrics.
        cache_dir: where setup scans are cached; None rescans every time.
        resize_images_to_masks: an image of another size than its mask (of the same aspect
            ratio) is resized to the mask's size; False refuses such pairs at setup.
        allow_absent_classes: let a class have no pixel in the train and val splits (refused
            at setup otherwise, `seglab.data.label_checks`).
        allow_void_heavy: let more than half of a split's pixels be void (refused otherwise).
        label_map: ``data.label_map``: the raw values or colours of each class and of void,
            or ``zero_is_void`` (`seglab.data.label_map`); None reads masks by
            ``mask_values``, ``palette`` and ``void_colours``.
        **options: the other options of `SegmentationDataModule`: ``classes``,
            ``num_classes``, ``ignore_index`` (also the raw mask value read as void),
            ``mean``, ``std``, ``in_channels`` (3 converts 8-bit images to RGB, 1 to
            grayscale; images of more bits or other counts keep their bands), ``max_value``,
            ``loader``, ``splits`` (a sample is named by its image's stem: ``holdout`` holds
            out stem prefixes, ``val_fraction`` validates on a share of a dataset without
            split folders) and ``few_labels``.
    """

    def __init__(
        self,
        root: str | Path,
        layout: LayoutSettings | Mapping[str, Any],
        augment: AugmentSettings | Mapping[str, Any],
        mask_values: Sequence[int] | None,
        palette: Sequence[Sequence[int]] | None,
        void_colours: Sequence[Sequence[int]],
        eval_scale: float,
        cache_dir: str | Path | None,
        resize_images_to_masks: bool = False,
        allow_absent_classes: bool = False,
        allow_void_heavy: bool = False,
        label_map: Any = None,
        **options: Any,
    ) -> None:
        super().__init__(palette=palette, **options)
        self.resize_images_to_masks = bool(resize_images_to_masks)
        self.allow_absent_classes = bool(allow_absent_classes)
        self.allow_void_heavy = bool(allow_void_heavy)
        self.void_colours = [[int(v) for v in rgb] for rgb in void_colours]
        self.mask_values = None if mask_values is None else [int(v) for v in mask_values]
        self.class_folders = self.mode == "multilabel"
        self.layout = FolderLayout(
            root,
            settings_of(LayoutSettings, layout, "layout"),
            self.classes if self.class_folders else None,
        )
        self.label_map = label_table(label_map, self.classes, self.ignore_index)
        self.decoder = mask_decoder(
            self.num_classes,
            self.ignore_index,
            mask_values,
            self.palette if palette is not None else None,
            void_colours,
            self.class_folders,
            self.label_map,
        )
        self.cache_dir = None if cache_dir is None else Path(cache_dir).expanduser()
        self.augment = settings_of(AugmentSettings, augment, "augment")
        jitter = self.augment.color_jitter
        if self.in_channels not in (1, 3) and jitter and any(jitter.values()):
            raise ValueError(
                f"data.augment.color_jitter={jitter} changes the colours of RGB or grayscale "
                f"images, not of data.in_channels={self.in_channels} bands: set "
                "data.augment.color_jitter=null"
            )
        self.eval_scale = float(eval_scale)
        # builds them once, so that option errors surface here rather than at setup
        self.transforms = {
            "train": train_transform(
                self.mean, self.std, self.ignore_index, **dataclasses.asdict(self.augment)
            ),
            "eval": eval_transform(self.mean, self.std, self.eval_scale),
        }
        self.collate_fn = functools.partial(pad_collate, ignore_index=self.ignore_index)
        self._scans: dict[str, ScanResult] = {}

    def training_size(self) -> tuple[str, Any, tuple[int, int]] | None:
        crop = self.augment.crop_size
        return None if crop is None else ("data.augment.crop_size", crop, (crop[0], crop[1]))

    def split_unavailable(self, split: str) -> str | None:
        return self.layout.unavailable(self.source_split(split))

    def pairs(self, split: str) -> list[tuple[Path, MaskFiles]]:
        """``(image, mask)`` paths of ``split`` (`seglab.data.layout.FolderLayout.pairs`)."""
        return self.layout.pairs(split)

    def scan(self, split: str) -> ScanResult:
        """Check every file of ``split`` (cached on disk and in memory); see `scan_pairs`."""
        if split not in self._scans:
            self._scans[split] = scan_pairs(
                self.pairs(split),
                self.decoder,
                self.num_classes,
                self.decoder.options(),
                self.cache_dir,
                f"the {split} split of {self.layout.root}",
                self.ignore_index,
                self.resize_images_to_masks,
                self.image_reader,
            )
        return self._scans[split]

    def class_pixel_counts(self, split: str) -> tuple[Tensor, Tensor]:
        """Counted on the mask files as they are, before any random training transform; for a
        split that reads part of the train split, on that part (`split_indices`)."""
        scan = self.scan(self.source_split(split))
        indices = self.split_indices(split)
        if indices is None:
            return scan.class_pixels, scan.image_pixels
        return scan.class_pixels[indices], scan.image_pixels[indices]

    def unnormalised_images(self, split: str) -> Iterator[Tensor]:
        """The image files as the dataset reads them, scaled, before any transform."""
        pairs = self.pairs(self.source_split(split))
        indices = self.split_indices(split)
        for index in range(len(pairs)) if indices is None else indices:
            pixels = self.image_reader(pairs[index][0])
            yield pixels.float().div_(255) if pixels.dtype == torch.uint8 else pixels

    def survey(self, split: str) -> tuple[Tensor, Tensor, UncoveredValues]:
        """What `class_pixel_counts` gives, but reading the raw values the label map does not
        cover as void instead of refusing them, and those values (`MaskDecoder.survey`).
        Every file is read again (no cache); the other checks of the scan refuse as ever."""
        if not isinstance(self.decoder, MaskDecoder):
            return (*self.class_pixel_counts(split), UncoveredValues())
        pairs = self.pairs(self.source_split(split))
        indices = self.split_indices(split)
        chosen = pairs if indices is None else [pairs[index] for index in indices]
        uncovered = UncoveredValues()
        scan = scan_pairs(
            chosen,
            uncovered.reader(self.decoder.survey),
            self.num_classes,
            {},
            None,
            f"the {split} split of {self.layout.root}",
            self.ignore_index,
            self.resize_images_to_masks,
            self.image_reader,
        )
        return scan.class_pixels, scan.image_pixels, uncovered

    def check_splits(self, stage: str | None) -> None:
        """Check the labels of the splits scanned (`seglab.data.label_checks`): at fit every
        check, else the void share."""
        labels = LabelMap(
            self.classes,
            self.ignore_index,
            self.mask_values,
            self.void_colours,
            self.class_folders,
            self.label_map is not None,
        )
        if stage in ("fit", None) and not self.allow_absent_classes:
            check_classes_present(self._scans, labels)
        if not self.allow_void_heavy:
            check_void_share(self._scans, labels)

    def sample_names(self, split: str) -> list[str]:
        """The names the images pair by (`seglab.data.layout.FolderLayout.named_pairs`): a
        file's stem, or its path below the image folder in subfolders; they name a sample
        wherever the dataset is stored."""
        return list(self.layout.named_pairs(split))

    def unlabeled_transform(self) -> Any:
        """The training transform: unlabelled images are cropped and flipped as labelled ones."""
        return self.transforms["train"]

    def _build_evaluation_dataset(self, split: str) -> SegmentationFolder:
        self.scan(split)
        return SegmentationFolder(
            self.pairs(split),
            self.decoder,
            self.transforms["eval"],
            self.image_reader,
            self.resize_images_to_masks,
        )

    def _build_dataset(self, split: str) -> SegmentationFolder:
        if split != "train":
            return self._build_evaluation_dataset(split)
        self.scan(split)
        read_mask = (
            self.decoder
            if self.few_labels.sparse is None
            else SparseMaskReader(self.decoder, self.few_labels.sparse)
        )
        return SegmentationFolder(
            self.pairs(split),
            read_mask,
            self.transforms["train"],
            self.image_reader,
            self.resize_images_to_masks,
        )
