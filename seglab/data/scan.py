"""Checking every image/mask pair of a split once, before training, and remembering the result.

A broken file found by a dataloader worker in epoch 7 costs the six epochs before it; found
here, it costs a few seconds at setup. The scan decodes every file in full (which is what finds
truncated ones), so its result, with the class pixel counts it gathers on the way, is cached
under ``paths.cache_dir`` keyed by the files' paths, sizes and modification times and by the
options that decide how masks read: a second run with the same files does not rescan.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from tqdm import tqdm

from seglab.atomic import atomic_path
from seglab.data.images import ImageReader
from seglab.data.metadata import DatasetError, count_class_pixels

# bump when what a scan checks or stores changes, so older cache entries are not trusted
SCAN_VERSION = 3
# below this many pairs a scan is quick enough to need no progress bar
PROGRESS_MIN_PAIRS = 200
# how many problems an error lists before it only counts the rest
MAX_LISTED_PROBLEMS = 5
#: What PIL raises for a file it cannot decode.
READ_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)
#: The mask of an image: one file, or in multilabel mode one file per class, in class order.
MaskFiles = Path | tuple[Path, ...]


def mask_files(mask: MaskFiles) -> tuple[Path, ...]:
    """Every file of a mask."""
    return mask if isinstance(mask, tuple) else (mask,)


def mask_name(mask: MaskFiles) -> str:
    """How errors name a mask: its file, or the class folders' file pattern."""
    if isinstance(mask, Path):
        return str(mask)
    first = mask[0]
    return str(first.parent.parent / "<class>" / first.name)


@dataclass(frozen=True)
class ScanResult:
    """What a scan learnt about a split.

    Attributes:
        class_pixels: ``(num_images, num_classes)`` int64 labelled pixels per class and image.
        image_pixels: ``(num_images,)`` int64 pixels of each image (of its mask), void included.
        void_pixels: ``(num_images,)`` int64 void mask values of each image (in multilabel
            mode summed over the class channels).
    """

    class_pixels: Tensor
    image_pixels: Tensor
    void_pixels: Tensor


def read_image_size(path: Path, reader: ImageReader) -> tuple[int, int]:
    """``(width, height)`` of an image, decoding it in full so that truncation is found, and
    refusing a band count that ``reader`` cannot hand to the model."""
    return reader.size(path)


def same_aspect(image: tuple[int, int], mask: tuple[int, int]) -> bool:
    """Whether two ``(width, height)`` sizes have one aspect ratio, up to a pixel of rounding
    at the smaller size (a 1000x750 photo and its 333x250 mask do)."""
    (image_w, image_h), (mask_w, mask_h) = image, mask
    return abs(image_w * mask_h - mask_w * image_h) <= max(image_h, mask_h)


def _cache_key(pairs: list[tuple[Path, MaskFiles]], options: dict[str, Any]) -> str:
    files = []
    for image, mask in pairs:
        for path in (image, *mask_files(mask)):
            stat = path.stat()
            files.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    payload = json.dumps({"version": SCAN_VERSION, "options": options, "files": files})
    return hashlib.sha256(payload.encode()).hexdigest()


def scan_pairs(
    pairs: list[tuple[Path, MaskFiles]],
    read_mask: Callable[[Any], np.ndarray],
    num_classes: int,
    options: dict[str, Any],
    cache_dir: str | Path | None,
    description: str,
    ignore_index: int,
    resize_images: bool = False,
    image_reader: ImageReader | None = None,
) -> ScanResult:
    """Check every ``(image, mask)`` pair and count class pixels; cached when possible.

    Args:
        pairs: image and mask paths of one split (`MaskFiles`).
        read_mask: decodes a mask into ``(H, W)`` class indices, or a multilabel mask into
            ``(num_classes, H, W)`` 0/1 channels (``ignore_index`` on void); raises
            `DatasetError` naming the file for values that are neither.
        num_classes: length of the class pixel counts.
        options: everything besides the files that changes how masks read (class values,
            palette, ignore index); part of the cache key.
        cache_dir: where results are kept; None scans every time.
        description: names the split in the progress bar and in errors, e.g.
            ``"split 'train' of /data/camvid"``.
        ignore_index: the value of void pixels in decoded masks, which the scan counts.
        resize_images: images of another size than their mask, with its aspect ratio, are
            resized to it when read (``data.resize_images_to_masks``), so they pass.
        image_reader: how the images are read (their bands must fit ``data.in_channels``);
            None: 8-bit images converted to RGB.

    Raises:
        DatasetError: listing, file by file, unreadable or truncated files, images and masks
            of different sizes (of one aspect ratio: naming ``data.resize_images_to_masks``)
            and mask values that are neither a class nor void.
    """
    reader = ImageReader() if image_reader is None else image_reader
    cache_file = None
    if cache_dir is not None:
        images = {"in_channels": reader.in_channels, "max_value": reader.max_value}
        key = _cache_key(pairs, {**options, "resize_images": resize_images, **images})
        cache_file = Path(cache_dir).expanduser() / "scans" / f"{key}.pt"
        if cache_file.is_file():
            return ScanResult(**torch.load(cache_file, weights_only=True))
    class_pixels = torch.zeros(len(pairs), num_classes, dtype=torch.int64)
    image_pixels = torch.zeros(len(pairs), dtype=torch.int64)
    void_pixels = torch.zeros(len(pairs), dtype=torch.int64)
    problems = []
    progress = tqdm(
        pairs, desc=f"checking {description}", unit="pair", disable=len(pairs) < PROGRESS_MIN_PAIRS
    )
    for index, (image_path, mask_path) in enumerate(progress):
        try:
            width, height = read_image_size(image_path, reader)
        except DatasetError as error:
            problems.append(str(error))
            continue
        except READ_ERRORS as error:
            problems.append(f"{image_path}: unreadable or truncated image ({error})")
            continue
        try:
            mask = read_mask(mask_path)
        except DatasetError as error:
            problems.append(str(error))
            continue
        except READ_ERRORS as error:
            problems.append(f"{mask_name(mask_path)}: unreadable or truncated mask ({error})")
            continue
        mask_height, mask_width = mask.shape[-2:]
        if (mask_height, mask_width) != (height, width):
            aspect = same_aspect((width, height), (mask_width, mask_height))
            if not (aspect and resize_images):
                remedy = (
                    "; set data.resize_images_to_masks=true to resize each image to its mask "
                    "(masks are never resized)"
                    if aspect
                    else ", another aspect ratio, so no resize aligns them: they must have the "
                    "same size"
                )
                problems.append(
                    f"{image_path}: image is {width}x{height} (WxH) but its mask "
                    f"{mask_name(mask_path)} is {mask_width}x{mask_height}{remedy}"
                )
                continue
        labels = torch.from_numpy(mask)
        class_pixels[index] = count_class_pixels(labels, num_classes)
        image_pixels[index] = mask_height * mask_width
        void_pixels[index] = int((labels == ignore_index).sum())
    if problems:
        listed = "; ".join(problems[:MAX_LISTED_PROBLEMS])
        more = len(problems) - MAX_LISTED_PROBLEMS
        suffix = f"; and {more} more" if more > 0 else ""
        raise DatasetError(f"{len(problems)} bad file(s) in {description}: {listed}{suffix}")
    if cache_file is not None:
        counts = {"class_pixels": class_pixels, "image_pixels": image_pixels}
        # a concurrent run reading the cache sees the whole file or none
        with atomic_path(cache_file) as partial:
            torch.save({**counts, "void_pixels": void_pixels}, partial)
    return ScanResult(class_pixels, image_pixels, void_pixels)
