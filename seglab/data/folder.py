"""Any dataset stored as image files with a mask file of the same stem.

The default layout is ``<root>/<split>/images/<stem>.<ext>`` with ``<root>/<split>/masks/
<stem>.png``; folder names, split names and split list files are options, which also covers
layouts such as SegNet's CamVid (``train/`` + ``trainannot/``) or VOC (one image folder and
``ImageSets/Segmentation/<split>.txt``). A dataset without split folders (``<root>/images``
and ``<root>/masks``) is all train split, and ``val_fraction`` validates on a share of it. In
``mode`` multilabel every class has a mask of its own, ``<mask_dir>/<class>/<stem>.png``.
Every split is checked at setup (`scan_pairs`), and so are the labels it holds
(`seglab.data.label_checks`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from seglab.data.base import DatasetError, Sample, SegmentationDataModule
from seglab.data.folds import FoldSplit, check_val_fraction, split_share, write_json
from seglab.data.holdout import hold_out, holdout_prefixes, write_record
from seglab.data.label_checks import LabelMap, check_classes_present, check_void_share
from seglab.data.masks import MaskDecoder, MultilabelMaskDecoder
from seglab.data.scan import READ_ERRORS, MaskFiles, ScanResult, mask_name, scan_pairs
from seglab.data.sparse import SparseMaskReader
from seglab.data.transforms import eval_transform, pad_collate, train_transform

# the image files seglab-predict picks from a folder
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# how many unmatched files an error names before it only counts the rest
_MAX_LISTED_FILES = 5
# what a folder template starts with when each split has a folder of its own
_SPLIT_FOLDER = "{split}/"


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
        transform: called as ``transform(image, mask)`` on a uint8 ``tv_tensors.Image`` and
            an int64 ``tv_tensors.Mask``; returns the float image and the mask.
        in_channels: 3 converts every image to RGB (grayscale replicated, palette applied,
            alpha dropped), 1 to grayscale.
        resize_images: an image of another size than its mask is resized to the mask's size
            (bilinear, antialiased) before the transform; the mask never is.
    """

    def __init__(
        self,
        pairs: Sequence[tuple[Path, MaskFiles]],
        read_mask: Callable[[Any], np.ndarray],
        transform: Callable[[Any, Any], tuple[Any, Any]],
        in_channels: int = 3,
        resize_images: bool = False,
    ) -> None:
        self.pairs = list(pairs)
        self.read_mask = read_mask
        self.transform = transform
        self.mode = "RGB" if in_channels == 3 else "L"
        self.resize_images = resize_images

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Sample:
        image_path, mask = self.pairs[index]
        try:
            with Image.open(image_path) as image:
                pixels = TF.pil_to_tensor(image.convert(self.mode))
        except READ_ERRORS as error:
            raise _changed_since_scan(image_path, "image", error) from error
        try:
            labels = torch.from_numpy(self.read_mask(mask))
        except DatasetError:
            raise
        except READ_ERRORS as error:
            raise _changed_since_scan(mask_name(mask), "mask", error) from error
        if self.resize_images and pixels.shape[-2:] != labels.shape[-2:]:
            pixels = TF.resize(
                pixels,
                list(labels.shape[-2:]),
                interpolation=TF.InterpolationMode.BILINEAR,
                antialias=True,
            )
        image, labels = self.transform(tv_tensors.Image(pixels), tv_tensors.Mask(labels))
        return image.as_subclass(Tensor), labels.as_subclass(Tensor), str(image_path)


class FolderDataModule(SegmentationDataModule):
    """Datamodule of image files with one mask file per image, in any folder layout.

    No argument has a default but those of configs saved before they existed:
    ``conf/data/folder.yaml`` holds the values with their comments (``conf/data/camvid.yaml``
    changes some for CamVid).

    Args:
        root: dataset folder; the folders below are relative to it.
        image_dir: folder of a split's images; ``{split}`` stands for the split's name in
            ``split_names``. Where ``<root>/{split}/...`` has no train folder but ``<root>/...``
            exists, the dataset has no split folders: all its images are the train split.
        mask_dir: folder of a split's masks, same convention; in ``mode`` multilabel it holds
            one folder per class, named as in ``classes``, of that class's masks.
        split_names: name of the train, val and test splits in ``image_dir``/``mask_dir``.
        split_files: split -> text file (relative to ``root``) listing one image stem per
            line; those splits take only the listed images. None lists the folders.
        image_extensions: image file extensions, case-insensitive.
        mask_extension: mask file extension.
        mask_values: raw mask value of each class, in class order (e.g. ``[0, 255]`` for
            binary masks saved as 0/255); None means the values are the class indices. In
            ``mode`` multilabel the two raw values [no, yes] of every class mask (None:
            ``[0, 1]``).
        palette: RGB colour of each class: maps RGB masks to classes, and draws masks.
        void_colours: RGB colours of void pixels in RGB masks.
        crop_size: ``(height, width)`` of the random training crop; smaller images are
            padded with void. None trains on whole images.
        scale_range: ``(low, high)`` range of the random training rescale (before the crop).
        hflip: probability of a horizontal training flip.
        vflip: probability of a vertical training flip.
        color_jitter: ``brightness``, ``contrast``, ``saturation``, ``hue`` of the training
            colour jitter; None turns it off.
        eval_scale: factor the val/test images are resized by before the model; their masks
            keep the labels' resolution, and logits are upsampled to it for the metrics.
        cache_dir: where setup scans are cached; None rescans every time.
        holdout: stem prefix, or list of them, of the train images held out
            (`seglab.data.holdout`): they become the val split, the others are trained on, and
            the dataset's own val split is not used; the test split stays as it is. None holds
            out nothing. Cannot be combined with ``folds``.
        holdout_record: JSON file the held-out and trained-on stems are written to when
            training sets up; None writes none.
        val_fraction: share of the train images validated on (`seglab.data.folds.split_share`,
            picked by ``split_seed``) instead of the val split, e.g. 0.2 for a dataset without
            split folders; None validates on the val split. Cannot be combined with ``folds``
            or ``holdout``.
        split_seed: which images ``val_fraction`` validates on; one seed, one cut.
        split_record: JSON file the validated-on and trained-on stems of ``val_fraction`` are
            written to when training sets up; None writes none.
        resize_images_to_masks: an image of another size than its mask (of the same aspect
            ratio) is resized to the mask's size; False refuses such pairs at setup.
        allow_absent_classes: let a class have no pixel in the train and val splits (refused
            at setup otherwise, `seglab.data.label_checks`).
        allow_void_heavy: let more than half of a split's pixels be void (refused otherwise).
        **options: the other options of `SegmentationDataModule`: ``classes``,
            ``num_classes``, ``ignore_index`` (also the raw mask value read as void),
            ``mean``, ``std``, ``in_channels`` (3 converts the images to RGB, 1 to grayscale),
            the loader options and the cross-validation folds (a fold's images are named by
            their stems).
    """

    def __init__(
        self,
        root: str | Path,
        image_dir: str,
        mask_dir: str,
        split_names: Mapping[str, str],
        split_files: Mapping[str, str] | None,
        image_extensions: Sequence[str],
        mask_extension: str,
        mask_values: Sequence[int] | None,
        palette: Sequence[Sequence[int]] | None,
        void_colours: Sequence[Sequence[int]],
        crop_size: Sequence[int] | None,
        scale_range: Sequence[float] | None,
        hflip: float,
        vflip: float,
        color_jitter: Mapping[str, float] | None,
        eval_scale: float,
        cache_dir: str | Path | None,
        holdout: str | Sequence[str] | None,
        holdout_record: str | Path | None,
        val_fraction: float | None = None,
        split_seed: int = 0,
        split_record: str | Path | None = None,
        resize_images_to_masks: bool = False,
        allow_absent_classes: bool = False,
        allow_void_heavy: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(palette=palette, **options)
        self.holdout = holdout_prefixes(holdout, self.folds)
        self.holdout_record = None if holdout_record is None else Path(holdout_record)
        self.val_fraction = check_val_fraction(val_fraction, self.folds)
        if self.holdout is not None and self.val_fraction is not None:
            raise ValueError(
                f"data.holdout={holdout} and data.val_fraction={val_fraction} both choose the "
                "validation samples from the train split; set one of them to null"
            )
        self.split_seed = int(split_seed)
        self.split_record = None if split_record is None else Path(split_record)
        self.resize_images_to_masks = bool(resize_images_to_masks)
        self.allow_absent_classes = bool(allow_absent_classes)
        self.allow_void_heavy = bool(allow_void_heavy)
        self.void_colours = [[int(v) for v in rgb] for rgb in void_colours]
        self.mask_values = None if mask_values is None else [int(v) for v in mask_values]
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DatasetError(f"data.root={root} is not a folder")
        self.split_names = dict(split_names)
        self.split_files = dict(split_files or {})
        self.image_dir, self.mask_dir = self._layout(str(image_dir), str(mask_dir))
        self.image_extensions = {ext.lower() for ext in image_extensions}
        self.mask_extension = mask_extension.lower()
        self.class_folders = self.mode == "multilabel"
        self.decoder: MaskDecoder | MultilabelMaskDecoder = (
            MultilabelMaskDecoder(self.ignore_index, mask_values)
            if self.class_folders
            else MaskDecoder(
                self.num_classes,
                self.ignore_index,
                mask_values,
                self.palette if palette is not None else None,
                void_colours,
            )
        )
        self.cache_dir = None if cache_dir is None else Path(cache_dir).expanduser()
        if not 0 <= hflip <= 1 or not 0 <= vflip <= 1:
            raise ValueError(f"data.hflip={hflip} and data.vflip={vflip} must be in [0, 1]")
        self.train_options = {
            "crop_size": None if crop_size is None else [int(v) for v in crop_size],
            "scale_range": None if scale_range is None else [float(v) for v in scale_range],
            "hflip": float(hflip),
            "vflip": float(vflip),
            "color_jitter": None if color_jitter is None else dict(color_jitter),
        }
        self.eval_scale = float(eval_scale)
        # builds them once, so that option errors surface here rather than at setup
        self.transforms = {
            "train": train_transform(self.mean, self.std, self.ignore_index, **self.train_options),
            "eval": eval_transform(self.mean, self.std, self.eval_scale),
        }
        self.collate_fn = functools.partial(pad_collate, ignore_index=self.ignore_index)
        self._scans: dict[str, ScanResult] = {}

    def _folder(self, template: str, split: str) -> Path:
        return self.root / template.format(split=self.split_names[split])

    def _layout(self, image_dir: str, mask_dir: str) -> tuple[str, str]:
        """The folder templates, without their ``{split}/`` where the dataset has no split
        folders: no ``<root>/train/images`` but a ``<root>/images``."""
        split_folders = image_dir.startswith(_SPLIT_FOLDER) and mask_dir.startswith(_SPLIT_FOLDER)
        if self.split_files or not split_folders or self._folder(image_dir, "train").is_dir():
            return image_dir, mask_dir
        flat = image_dir.removeprefix(_SPLIT_FOLDER), mask_dir.removeprefix(_SPLIT_FOLDER)
        return flat if (self.root / flat[0]).is_dir() else (image_dir, mask_dir)

    def _reads_train_images(self, split: str) -> bool:
        """Whether ``split`` would read the train split's image folder: a dataset without split
        folders, which only has a train split."""
        return (
            split != "train"
            and split not in self.split_files
            and self._folder(self.image_dir, split) == self._folder(self.image_dir, "train")
        )

    def training_size(self) -> tuple[str, Any, tuple[int, int]] | None:
        crop = self.train_options["crop_size"]
        return None if crop is None else ("data.crop_size", crop, (crop[0], crop[1]))

    def split_unavailable(self, split: str) -> str | None:
        split = self.source_split(split)
        if split not in self.split_names:
            return f"data.split_names={self.split_names} has no {split!r} split"
        if self._reads_train_images(split):
            images = self._folder(self.image_dir, "train")
            if split == "val":
                return (
                    f"{images} holds all the images, without split folders ({split}/images), so "
                    "there is no val split: set data.val_fraction=0.2 to validate on a share of "
                    "the images"
                )
            return f"no {split} split: {images} holds all the images, without split folders"
        if split in self.split_files and not (self.root / self.split_files[split]).is_file():
            return f"{split} split list {self.root / self.split_files[split]} does not exist"
        images = self._folder(self.image_dir, split)
        if not images.is_dir():
            return f"{split} split folder {images} does not exist"
        return None

    def _files(self, folder: Path, extensions: set[str]) -> dict[str, Path]:
        files: dict[str, Path] = {}
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or path.suffix.lower() not in extensions:
                continue
            if path.stem in files:
                raise DatasetError(
                    f"{path} and {files[path.stem]} share the stem {path.stem!r}; keep one "
                    "file per stem so that each mask has exactly one image"
                )
            files[path.stem] = path
        return files

    def pairs(self, split: str) -> list[tuple[Path, MaskFiles]]:
        """``(image, mask)`` paths of ``split`` (in multilabel mode the mask files of every
        class, in class order); errors name unmatched files, missing folders, empty splits."""
        reason = self.split_unavailable(split)
        if reason is not None:
            raise DatasetError(reason)
        image_folder = self._folder(self.image_dir, split)
        mask_folder = self._folder(self.mask_dir, split)
        if not mask_folder.is_dir():
            raise DatasetError(
                f"mask folder {mask_folder} of the {split} split does not exist (its images are "
                f"in {image_folder}); set data.mask_dir"
            )
        folders = (
            [mask_folder / name for name in self.classes] if self.class_folders else [mask_folder]
        )
        for folder in folders:
            if not folder.is_dir():
                raise DatasetError(
                    f"class mask folder {folder} of the {split} split does not exist; in "
                    f"mode=multilabel every class has a folder <mask_dir>/<class> of masks "
                    f"<stem>{self.mask_extension}"
                )
        images = self._files(image_folder, self.image_extensions)
        masks = [self._files(folder, {self.mask_extension}) for folder in folders]
        if split in self.split_files:
            list_file = self.root / self.split_files[split]
            stems = [line.strip() for line in list_file.read_text().splitlines() if line.strip()]
            absent = [stem for stem in stems if stem not in images]
            if absent:
                raise DatasetError(
                    f"{list_file} lists {len(absent)} stem(s) with no image in {image_folder}: "
                    f"{absent[:_MAX_LISTED_FILES]}"
                )
        else:
            stems = list(images)
            for folder_masks in masks:
                orphans = [folder_masks[stem] for stem in folder_masks if stem not in images]
                if orphans:
                    raise DatasetError(
                        f"{len(orphans)} mask(s) without an image in {image_folder}: "
                        f"{[str(p) for p in orphans[:_MAX_LISTED_FILES]]}"
                    )
        for folder, folder_masks in zip(folders, masks, strict=True):
            unmatched = [images[stem] for stem in stems if stem not in folder_masks]
            if unmatched:
                raise DatasetError(
                    f"{len(unmatched)} image(s) without a mask <stem>{self.mask_extension} in "
                    f"{folder}: {[str(p) for p in unmatched[:_MAX_LISTED_FILES]]}"
                    f"{self._extension_hint(folder, {p.stem for p in unmatched})}"
                )
        if not stems:
            raise DatasetError(
                f"the {split} split is empty: no {sorted(self.image_extensions)} images in "
                f"{image_folder}"
            )
        if self.class_folders:
            return [(images[stem], tuple(m[stem] for m in masks)) for stem in stems]
        return [(images[stem], masks[0][stem]) for stem in stems]

    def _extension_hint(self, folder: Path, stems: set[str]) -> str:
        """Where the masks of ``stems`` exist with another extension, the key that finds them."""
        found = sorted(
            {p.suffix.lower() for p in folder.iterdir() if p.stem in stems and p.is_file()}
        )
        return (
            f"; {folder} holds them as {found[0]}: set data.mask_extension={found[0]}"
            if found
            else ""
        )

    def scan(self, split: str) -> ScanResult:
        """Check every file of ``split`` (cached on disk and in memory); see `scan_pairs`."""
        if split not in self._scans:
            self._scans[split] = scan_pairs(
                self.pairs(split),
                self.decoder,
                self.num_classes,
                self.decoder.options(),
                self.cache_dir,
                f"the {split} split of {self.root}",
                self.ignore_index,
                self.resize_images_to_masks,
            )
        return self._scans[split]

    def class_pixel_counts(self, split: str) -> tuple[Tensor, Tensor]:
        """Counted on the mask files as they are, before any random training transform; for a
        run that `validates_on_train`, on the part of the train split that ``split`` is."""
        scan = self.scan(self.source_split(split))
        if split == "train" and self.few_labels.limited:
            # the unlabelled samples' masks are not the training's to read
            indices = self.labeled_split().labeled
        elif not self.validates_on_train() or split == "test":
            return scan.class_pixels, scan.image_pixels
        else:
            indices = getattr(self.fold_split(), split)
        return scan.class_pixels[indices], scan.image_pixels[indices]

    def validates_on_train(self) -> bool:
        cut = self.holdout is not None or self.val_fraction is not None
        return cut or super().validates_on_train()

    def _split_train(self, names: list[str]) -> FoldSplit:
        if self.val_fraction is not None:
            return split_share(names, self.val_fraction, self.split_seed)
        if self.holdout is None:
            return super()._split_train(names)
        return hold_out(names, self.holdout)

    def setup(self, stage: str | None = None) -> None:
        """Also checks the labels of the splits scanned (`seglab.data.label_checks`: at fit
        every check, else the void share), and records, at fit, the held-out and trained-on
        stems in ``holdout_record`` or ``split_record``."""
        super().setup(stage)
        labels = LabelMap(
            self.classes,
            self.ignore_index,
            self.mask_values,
            self.void_colours,
            self.class_folders,
        )
        if stage in ("fit", None) and not self.allow_absent_classes:
            check_classes_present(self._scans, labels)
        if not self.allow_void_heavy:
            check_void_share(self._scans, labels)
        if stage != "fit" or not self.validates_on_train() or self.folds is not None:
            return
        names, indices = self.sample_names("train"), self.fold_split()
        train, val = [names[i] for i in indices.train], [names[i] for i in indices.val]
        if self.holdout is not None and self.holdout_record is not None:
            write_record(self.holdout_record, self.holdout, train, val)
        if self.val_fraction is not None and self.split_record is not None:
            settings = {"val_fraction": self.val_fraction, "split_seed": self.split_seed}
            write_json(self.split_record, {**settings, "val": val, "train": train})

    def sample_names(self, split: str) -> list[str]:
        """The image files' stems: they name a sample wherever the dataset is stored."""
        return [image.stem for image, _ in self.pairs(split)]

    def unlabeled_transform(self) -> Any:
        """The training transform: unlabelled images are cropped and flipped as labelled ones."""
        return self.transforms["train"]

    def _build_evaluation_dataset(self, split: str) -> SegmentationFolder:
        self.scan(split)
        return SegmentationFolder(
            self.pairs(split),
            self.decoder,
            self.transforms["eval"],
            self.in_channels,
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
            self.in_channels,
            self.resize_images_to_masks,
        )
