"""Any dataset stored as image files with a mask file of the same stem.

The default layout is ``<root>/<split>/images/<stem>.<ext>`` with ``<root>/<split>/masks/
<stem>.png``; folder names, split names and split list files are options, which also covers
layouts such as SegNet's CamVid (``train/`` + ``trainannot/``) or VOC (one image folder and
``ImageSets/Segmentation/<split>.txt``). In ``mode`` multilabel every class has a mask of
its own, ``<mask_dir>/<class>/<stem>.png``. Every split is checked at setup (`scan_pairs`).
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
from seglab.data.folds import FoldSplit
from seglab.data.holdout import hold_out, holdout_prefixes, write_record
from seglab.data.scan import READ_ERRORS, MaskFiles, ScanResult, mask_name, scan_pairs
from seglab.data.sparse import SparseMaskReader
from seglab.data.transforms import eval_transform, pad_collate, train_transform

# the image files seglab-predict picks from a folder
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# how many unmatched files an error names before it only counts the rest
_MAX_LISTED_FILES = 5


def _rgb_codes(rgb: np.ndarray) -> np.ndarray:
    """One integer per colour, so that colours can be looked up like single values."""
    rgb = rgb.astype(np.int64).reshape(*rgb.shape[:-1], 3)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


class MaskDecoder:
    """Reads a mask file into ``(H, W)`` int64 class indices, ``ignore_index`` on void.

    Single-channel masks (8/16-bit grayscale, or palette PNGs, whose pixel values are the
    palette indices) hold raw values: class ``i`` is ``mask_values[i]``, or ``i`` itself when
    ``mask_values`` is None, and a raw value equal to ``ignore_index`` that is no class value
    is void. RGB(A) masks hold colours: class ``i`` is ``palette[i]`` and ``void_colours``
    are void. Any other value is an error naming the file.

    Args:
        num_classes: number of classes.
        ignore_index: class index of void pixels.
        mask_values: raw pixel value of each class, in class order (e.g. ``[0, 255]``).
        palette: RGB colour of each class, for RGB masks.
        void_colours: RGB colours of void pixels in RGB masks.
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int,
        mask_values: Sequence[int] | None = None,
        palette: Sequence[Sequence[int]] | None = None,
        void_colours: Sequence[Sequence[int]] = (),
    ) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.mask_values = None if mask_values is None else [int(v) for v in mask_values]
        self.palette = None if palette is None else [[int(v) for v in rgb] for rgb in palette]
        self.void_colours = [[int(v) for v in rgb] for rgb in void_colours]
        if self.mask_values is not None:
            if len(self.mask_values) != num_classes:
                raise ValueError(
                    f"data.mask_values={self.mask_values} has {len(self.mask_values)} values "
                    f"but there are {num_classes} classes; give one raw pixel value per class"
                )
            if len(set(self.mask_values)) != num_classes:
                raise ValueError(f"data.mask_values={self.mask_values} repeats a value")
        values = self.mask_values if self.mask_values is not None else list(range(num_classes))
        void = [ignore_index] if ignore_index >= 0 and ignore_index not in values else []
        self._values = self._table(
            values + void, list(range(num_classes)) + [ignore_index] * len(void)
        )
        self._colours = None
        if self.palette is not None:
            colours = np.array(self.palette + self.void_colours, dtype=np.int64)
            codes = _rgb_codes(colours).tolist()
            targets = list(range(num_classes)) + [ignore_index] * len(self.void_colours)
            self._colours = self._table(codes, targets)

    @staticmethod
    def _table(keys: Sequence[int], targets: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        keys_array = np.asarray(keys, dtype=np.int64)
        order = np.argsort(keys_array, kind="stable")
        return keys_array[order], np.asarray(targets, dtype=np.int64)[order]

    def options(self) -> dict[str, Any]:
        """What decides how a mask reads; part of the scan cache key."""
        return {
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
            "mask_values": self.mask_values,
            "palette": self.palette,
            "void_colours": self.void_colours,
        }

    def __call__(self, path: Path) -> np.ndarray:
        with Image.open(path) as mask:
            if mask.mode in ("RGB", "RGBA"):
                raw, table, kind = (
                    _rgb_codes(np.asarray(mask.convert("RGB"))),
                    self._colours,
                    "colour",
                )
            else:
                if mask.mode in ("1", "LA"):
                    mask = mask.convert("L")
                raw, table, kind = np.asarray(mask).astype(np.int64), self._values, "value"
        if table is None:
            raise DatasetError(
                f"{path}: mask is an RGB image but data.palette is not set; give the RGB colour "
                "of each class in data.palette, or save masks as single-channel class values"
            )
        keys, targets = table
        position = np.searchsorted(keys, raw).clip(max=len(keys) - 1)
        known = keys[position] == raw
        if not known.all():
            raise DatasetError(f"{path}: {self._describe_unknown(raw[~known], kind)}")
        return targets[position]

    def _describe_unknown(self, raw: np.ndarray, kind: str) -> str:
        unknown = np.unique(raw)[:10].tolist()
        if kind == "colour":
            colours = [[code >> 16, (code >> 8) & 255, code & 255] for code in unknown]
            return (
                f"mask has colours {colours} that are in neither data.palette={self.palette} "
                f"nor data.void_colours={self.void_colours}"
            )
        values = (
            f"data.mask_values={self.mask_values}"
            if self.mask_values is not None
            else f"a class index 0..{self.num_classes - 1}"
        )
        return (
            f"mask has values {unknown} that are neither {values} nor "
            f"data.ignore_index={self.ignore_index}"
        )


class MultilabelMaskDecoder:
    """Reads the masks of one image, one file per class, into ``(num_classes, H, W)`` int64
    channels: 1 where the pixel has the class, 0 where not, ``ignore_index`` on void.

    Each file is single-channel: raw value ``mask_values[0]`` is "no", ``mask_values[1]``
    "yes" (``[0, 1]`` when None; ``[0, 255]`` for masks saved black and white), and a raw
    value equal to ``ignore_index`` that is neither is void. Any other value, and class masks
    of different sizes, are errors naming the file.

    Args:
        ignore_index: value of void pixels.
        mask_values: the raw "no" and "yes" values of every class mask.
    """

    def __init__(self, ignore_index: int, mask_values: Sequence[int] | None = None) -> None:
        if mask_values is not None and len(mask_values) != 2:
            raise ValueError(
                f"data.mask_values={list(mask_values)} must be the two raw values [no, yes] of "
                "every class mask in mode=multilabel, e.g. [0, 255]"
            )
        self.channel = MaskDecoder(2, ignore_index, mask_values)

    def options(self) -> dict[str, Any]:
        """What decides how masks read; part of the scan cache key."""
        return {"mode": "multilabel", **self.channel.options()}

    def __call__(self, paths: tuple[Path, ...]) -> np.ndarray:
        channels: list[np.ndarray] = []
        for path in paths:
            channel = self.channel(path)
            if channels and channel.shape != channels[0].shape:
                raise DatasetError(
                    f"{path}: mask is {channel.shape[1]}x{channel.shape[0]} (WxH) but "
                    f"{paths[0]} is {channels[0].shape[1]}x{channels[0].shape[0]}; the class "
                    "masks of an image must have its size"
                )
            channels.append(channel)
        return np.stack(channels)


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
    """

    def __init__(
        self,
        pairs: Sequence[tuple[Path, MaskFiles]],
        read_mask: Callable[[Any], np.ndarray],
        transform: Callable[[Any, Any], tuple[Any, Any]],
        in_channels: int = 3,
    ) -> None:
        self.pairs = list(pairs)
        self.read_mask = read_mask
        self.transform = transform
        self.mode = "RGB" if in_channels == 3 else "L"

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
        image, labels = self.transform(tv_tensors.Image(pixels), tv_tensors.Mask(labels))
        return image.as_subclass(Tensor), labels.as_subclass(Tensor), str(image_path)


class FolderDataModule(SegmentationDataModule):
    """Datamodule of image files with one mask file per image, in any folder layout.

    No argument has a default: ``conf/data/folder.yaml`` holds the values with their comments
    (``conf/data/camvid.yaml`` changes some for CamVid).

    Args:
        root: dataset folder; the folders below are relative to it.
        image_dir: folder of a split's images; ``{split}`` stands for the split's name in
            ``split_names``.
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
        **options: Any,
    ) -> None:
        super().__init__(palette=palette, **options)
        self.holdout = holdout_prefixes(holdout, self.folds)
        self.holdout_record = None if holdout_record is None else Path(holdout_record)
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DatasetError(f"data.root={root} is not a folder")
        self.image_dir = str(image_dir)
        self.mask_dir = str(mask_dir)
        self.split_names = dict(split_names)
        self.split_files = dict(split_files or {})
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

    def training_size(self) -> tuple[str, Any, tuple[int, int]] | None:
        crop = self.train_options["crop_size"]
        return None if crop is None else ("data.crop_size", crop, (crop[0], crop[1]))

    def split_unavailable(self, split: str) -> str | None:
        split = self.source_split(split)
        if split not in self.split_names:
            return f"data.split_names={self.split_names} has no {split!r} split"
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
                )
        if not stems:
            raise DatasetError(
                f"the {split} split is empty: no {sorted(self.image_extensions)} images in "
                f"{image_folder}"
            )
        if self.class_folders:
            return [(images[stem], tuple(m[stem] for m in masks)) for stem in stems]
        return [(images[stem], masks[0][stem]) for stem in stems]

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
        return self.holdout is not None or super().validates_on_train()

    def _split_train(self, names: list[str]) -> FoldSplit:
        if self.holdout is None:
            return super()._split_train(names)
        return hold_out(names, self.holdout)

    def setup(self, stage: str | None = None) -> None:
        """Also records, at fit, the held-out and trained-on stems in ``holdout_record``."""
        super().setup(stage)
        if stage == "fit" and self.holdout is not None and self.holdout_record is not None:
            names, indices = self.sample_names("train"), self.fold_split()
            train = [names[index] for index in indices.train]
            write_record(self.holdout_record, self.holdout, train, [names[i] for i in indices.val])

    def sample_names(self, split: str) -> list[str]:
        """The image files' stems: they name a sample wherever the dataset is stored."""
        return [image.stem for image, _ in self.pairs(split)]

    def unlabeled_transform(self) -> Any:
        """The training transform: unlabelled images are cropped and flipped as labelled ones."""
        return self.transforms["train"]

    def _build_evaluation_dataset(self, split: str) -> SegmentationFolder:
        self.scan(split)
        return SegmentationFolder(
            self.pairs(split), self.decoder, self.transforms["eval"], self.in_channels
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
            self.pairs(split), read_mask, self.transforms["train"], self.in_channels
        )
