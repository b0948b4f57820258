"""Learning from few labels: which training samples keep their masks, and the unlabelled images.

A sample stays labelled by its name and the seed alone (a hash, as `seglab.data.folds` deals
folds), so the subset is the same on every machine, in a resumed run and in every job of a
sweep, and does not depend on the order in which a folder lists its files. The other training
samples become unlabelled; images from ``data.unlabeled_dir`` join them.
"""

from __future__ import annotations

import glob
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from PIL import Image
from torch.utils.data import ConcatDataset, Dataset, Subset
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from seglab.atomic import write_text
from seglab.data.sparse import SparseLabels, check_sparse

#: the file a run with a labelled subset records it in, inside its run directory
RECORD_NAME = "labeled.json"
#: the image files an unlabelled folder contributes
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# what PIL raises for a file that is not a readable image
_READ_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


class LabeledSplit(NamedTuple):
    """Indices into the train split: the samples trained on with their masks, and the others."""

    labeled: list[int]
    unlabeled: list[int]


def check_labeled(fraction: float | None, count: int | None) -> None:
    """Refuse ``data.labeled_fraction``/``data.labeled_count`` values, naming the key."""
    if fraction is not None and count is not None:
        raise ValueError(
            f"data.labeled_fraction={fraction} and data.labeled_count={count} both choose the "
            "labelled subset; set one of them, the other to null"
        )
    if fraction is not None and not 0 < fraction <= 1:
        raise ValueError(
            f"data.labeled_fraction={fraction} must be in (0, 1] (the share of the training "
            "samples that keep their masks), or null for all of them"
        )
    if count is not None and count < 1:
        raise ValueError(f"data.labeled_count={count} must be at least 1, or null for all")


def _rank_key(seed: int, name: str) -> bytes:
    return hashlib.blake2b(f"seglab.labeled/{seed}/{name}".encode(), digest_size=8).digest()


def split_labeled(
    names: Sequence[str],
    pool: Sequence[int],
    fraction: float | None,
    count: int | None,
    seed: int,
) -> LabeledSplit:
    """The labelled and unlabelled samples among the train-split indices ``pool``.

    ``names`` names every sample of the train split, in dataset order. The samples of the pool
    are ranked by a hash of ``(seed, name)``; the first ``count`` of them (or ``fraction`` of
    the pool, rounded down) stay labelled. Both index lists keep dataset order.

    Raises:
        ValueError: naming the key when the subset would be empty or larger than the pool.
    """
    pool = list(pool)
    if count is not None:
        if count > len(pool):
            raise ValueError(
                f"data.labeled_count={count} exceeds the {len(pool)} training samples; use "
                f"data.labeled_count <= {len(pool)}"
            )
        kept = count
    else:
        # rounded first: 0.29 * 100 is 28.999999999999996
        kept = int(round((1.0 if fraction is None else fraction) * len(pool), 6))
        if kept < 1:
            raise ValueError(
                f"data.labeled_fraction={fraction} of the {len(pool)} training samples leaves no "
                f"labelled image; use at least {1 / len(pool):.4g}, or data.labeled_count"
            )
    ranked = sorted(pool, key=lambda index: _rank_key(seed, names[index]))
    labeled = set(ranked[:kept])
    return LabeledSplit(
        labeled=[index for index in pool if index in labeled],
        unlabeled=[index for index in pool if index not in labeled],
    )


def write_record(path: Path, settings: dict[str, Any], labeled: list[str], unlabeled: list[str]):
    """Write the labelled and unlabelled sample names to ``path`` (JSON), whole or not at all.

    Every process of a distributed run writes the same content through a partial file of its
    own (`seglab.atomic.atomic_path`).
    """
    record = {**settings, "labeled": labeled, "unlabeled": unlabeled}
    write_text(path, json.dumps(record, indent=1) + "\n")


def unlabeled_files(pattern: str | Path) -> list[Path]:
    """The image files of ``data.unlabeled_dir``: a folder's images, or a glob's matches.

    Raises:
        ValueError: naming the key when the folder is missing or nothing matches.
    """
    text = str(Path(pattern).expanduser())
    folder = Path(text)
    if folder.is_dir():
        files = sorted(folder.iterdir())
    elif glob.has_magic(text):
        files = sorted(Path(match) for match in glob.glob(text, recursive=True))
    else:
        raise ValueError(
            f"data.unlabeled_dir={pattern} is neither a folder nor a glob pattern; give a "
            "folder of images or a pattern such as 'frames/**/*.png'"
        )
    images = [
        path
        for path in files
        if path.is_file()
        and not path.name.startswith(".")
        and path.suffix.lower() in IMAGE_EXTENSIONS
    ]
    if not images:
        raise ValueError(
            f"data.unlabeled_dir={pattern} holds no image files ({', '.join(IMAGE_EXTENSIONS)})"
        )
    return images


class UnlabeledImages(torch.utils.data.Dataset):
    """Images without masks, as ``(image, mask, name)`` items whose mask is all void.

    The void mask lets the images share the train split's transform (a crop pads it like any
    mask) and collation; nothing is learnt from it.

    Args:
        paths: the image files.
        transform: called as ``transform(image, mask)`` on a uint8 ``tv_tensors.Image`` and an
            int64 ``tv_tensors.Mask``, as a dataset's training transform.
        in_channels: 3 reads the images as RGB, 1 as grayscale.
        ignore_index: the void value the mask is filled with.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        transform: Callable[[Any, Any], tuple[Any, Any]],
        in_channels: int,
        ignore_index: int,
    ) -> None:
        self.paths = list(paths)
        self.transform = transform
        self.mode = "RGB" if in_channels == 3 else "L"
        self.ignore_index = ignore_index

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        path = self.paths[index]
        try:
            with Image.open(path) as image:
                pixels = TF.pil_to_tensor(image.convert(self.mode))
        except _READ_ERRORS as error:
            raise ValueError(
                f"{path}: unreadable unlabelled image ({type(error).__name__}: {error}); "
                "remove it from data.unlabeled_dir"
            ) from error
        void = torch.full(pixels.shape[-2:], self.ignore_index, dtype=torch.int64)
        image, mask = self.transform(tv_tensors.Image(pixels), tv_tensors.Mask(void))
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor), str(path)


class FewLabels:
    """A datamodule's settings for learning from few labels, and the subset they choose.

    Args:
        fraction: ``data.labeled_fraction``; None with ``count``, or for every sample.
        count: ``data.labeled_count``; None for a fraction, or for every sample.
        seed: ``data.labeled_seed``: which samples stay labelled, which sparse pixels are kept.
        record: ``data.labeled_record``: the JSON file the subset is written to; None: none.
        unlabeled_dir: ``data.unlabeled_dir``: listed now, so that a missing or empty folder
            is refused before anything trains.
        sparse_labels: ``data.sparse_labels``: ``points``, ``scribbles`` or None.
        sparse_points: ``data.sparse_points``.
        num_classes: the data's class count.
        ignore_index: the data's void value.
    """

    def __init__(
        self,
        fraction: float | None,
        count: int | None,
        seed: int,
        record: str | Path | None,
        unlabeled_dir: str | Path | None,
        sparse_labels: str | None,
        sparse_points: int,
        num_classes: int,
        ignore_index: int,
    ) -> None:
        self.fraction = None if fraction is None else float(fraction)
        self.count = None if count is None else int(count)
        self.seed = int(seed)
        check_labeled(self.fraction, self.count)
        check_sparse(sparse_labels, int(sparse_points))
        self.record = None if record is None else Path(record)
        self.files = None if unlabeled_dir is None else unlabeled_files(unlabeled_dir)
        #: what a training mask keeps; None: all of it
        self.sparse = (
            None
            if sparse_labels is None
            else SparseLabels(
                sparse_labels, int(sparse_points), self.seed, num_classes, ignore_index
            )
        )
        #: set by the training method: the unlabelled batch size and how the loaders combine
        self.loading: tuple[int, str] | None = None
        self._split: LabeledSplit | None = None
        self._names: list[str] = []

    @property
    def limited(self) -> bool:
        """Whether only a subset of the training samples keeps its masks."""
        return self.fraction is not None or self.count is not None

    def split(self, names: Sequence[str], pool: Sequence[int]) -> LabeledSplit:
        """`split_labeled` of the train split ``names`` over ``pool``, chosen once."""
        if self._split is None:
            self._split = split_labeled(names, pool, self.fraction, self.count, self.seed)
            self._names = list(names)
        return self._split

    def write_record(self) -> None:
        """Write the chosen subset's sample names to ``record`` (after `split`)."""
        if self.record is None or self._split is None:
            return
        settings = {"labeled_fraction": self.fraction, "labeled_count": self.count}
        write_record(
            self.record,
            {**settings, "labeled_seed": self.seed},
            labeled=[self._names[index] for index in self._split.labeled],
            unlabeled=[self._names[index] for index in self._split.unlabeled],
        )

    def unlabeled(
        self,
        train: Dataset,
        transform: Callable[[Any, Any], tuple[Any, Any]],
        in_channels: int,
        ignore_index: int,
    ) -> Dataset | None:
        """The unlabelled images: the samples of the whole ``train`` split outside the
        labelled subset (after `split`), whose masks come along only so that pseudo-labels can
        be scored, never learnt from; then the images of ``unlabeled_dir`` through
        ``transform``, with all-void masks. None when there are none."""
        parts: list[Dataset] = []
        if self._split is not None and self._split.unlabeled:
            parts.append(Subset(train, self._split.unlabeled))
        if self.files is not None:
            parts.append(UnlabeledImages(self.files, transform, in_channels, ignore_index))
        return ConcatDataset(parts) if parts else None
