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
from seglab.data.base import DatasetError, count_class_pixels

# bump when what a scan checks or stores changes, so older cache entries are not trusted
SCAN_VERSION = 1
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
        image_pixels: ``(num_images,)`` int64 pixels of each image, void included.
    """

    class_pixels: Tensor
    image_pixels: Tensor


def read_image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image, decoding it in full so that truncation is found."""
    with Image.open(path) as image:
        image.load()
        return image.size


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

    Raises:
        DatasetError: listing, file by file, unreadable or truncated files, images and masks
            of different sizes and mask values that are neither a class nor void.
    """
    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir).expanduser() / "scans" / f"{_cache_key(pairs, options)}.pt"
        if cache_file.is_file():
            cached = torch.load(cache_file, weights_only=True)
            return ScanResult(cached["class_pixels"], cached["image_pixels"])
    class_pixels = torch.zeros(len(pairs), num_classes, dtype=torch.int64)
    image_pixels = torch.zeros(len(pairs), dtype=torch.int64)
    problems = []
    progress = tqdm(
        pairs, desc=f"checking {description}", unit="pair", disable=len(pairs) < PROGRESS_MIN_PAIRS
    )
    for index, (image_path, mask_path) in enumerate(progress):
        try:
            width, height = read_image_size(image_path)
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
        if mask.shape[-2:] != (height, width):
            problems.append(
                f"{image_path}: image is {width}x{height} (WxH) but its mask "
                f"{mask_name(mask_path)} is {mask.shape[-1]}x{mask.shape[-2]}; they must have "
                "the same size"
            )
            continue
        class_pixels[index] = count_class_pixels(torch.from_numpy(mask), num_classes)
        image_pixels[index] = height * width
    if problems:
        listed = "; ".join(problems[:MAX_LISTED_PROBLEMS])
        more = len(problems) - MAX_LISTED_PROBLEMS
        suffix = f"; and {more} more" if more > 0 else ""
        raise DatasetError(f"{len(problems)} bad file(s) in {description}: {listed}{suffix}")
    if cache_file is not None:
        # a concurrent run reading the cache sees the whole file or none
        with atomic_path(cache_file) as partial:
            torch.save({"class_pixels": class_pixels, "image_pixels": image_pixels}, partial)
    return ScanResult(class_pixels, image_pixels)
