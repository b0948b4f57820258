"""Learning from few labels, loading side: the unlabelled images, and sparse training masks.

Which training samples keep their masks is part of the run's split plan
(`seglab.data.splits`); the others become unlabelled here, and images from
``data.few_labels.unlabeled_dir`` join them.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import ConcatDataset, Dataset, Subset
from torchvision import tv_tensors

from seglab.data.layout import IMAGE_EXTENSIONS
from seglab.data.scan import READ_ERRORS
from seglab.data.settings import normalised
from seglab.data.sparse import SparseLabels, check_sparse


def _optional(kind: type, value: Any) -> Any:
    return None if value is None else kind(value)


@dataclass(frozen=True)
class FewLabelsSettings:
    """``data.few_labels``: learning from few labels, checked when made, naming the key.

    Attributes:
        labeled_fraction: share of the training samples (of the training folds) that keep
            their masks, in (0, 1]; None: all of them.
        labeled_count: number of them instead; at most one of the two is set.
        labeled_seed: which samples stay labelled, and which pixels sparse labels keep.
        labeled_record: JSON file the labelled and unlabelled sample names are written to at
            fit (`seglab.data.splits`); None writes none.
        unlabeled_dir: more unlabelled images: a folder of images or a glob pattern; None adds
            none.
        sparse_labels: ``points``, ``scribbles`` (`seglab.data.sparse`) or None: full masks.
        sparse_points: pixels kept of every region with ``points``.
    """

    labeled_fraction: float | None = None
    labeled_count: int | None = None
    labeled_seed: int = 0
    labeled_record: str | Path | None = None
    unlabeled_dir: str | Path | None = None
    sparse_labels: str | None = None
    sparse_points: int = 1

    def __post_init__(self) -> None:
        fraction, count = self.labeled_fraction, self.labeled_count
        normalised(
            self,
            labeled_fraction=_optional(float, fraction),
            labeled_count=_optional(int, count),
            labeled_seed=int(self.labeled_seed),
            labeled_record=_optional(Path, self.labeled_record),
            sparse_points=int(self.sparse_points),
        )
        if fraction is not None and count is not None:
            raise ValueError(
                f"data.few_labels.labeled_fraction={fraction} and data.few_labels.labeled_count="
                f"{count} both choose the labelled subset; set one of them, the other to null"
            )
        if self.labeled_fraction is not None and not 0 < self.labeled_fraction <= 1:
            raise ValueError(
                f"data.few_labels.labeled_fraction={self.labeled_fraction} must be in (0, 1] (the "
                "share of the training samples that keep their masks), or null for all of them"
            )
        if self.labeled_count is not None and self.labeled_count < 1:
            raise ValueError(
                f"data.few_labels.labeled_count={self.labeled_count} must be at least 1, or null "
                "for all"
            )
        check_sparse(self.sparse_labels, self.sparse_points)

    @property
    def labels_limited(self) -> bool:
        """Whether only a subset of the samples trained on keeps its masks."""
        return self.labeled_fraction is not None or self.labeled_count is not None


def unlabeled_files(pattern: str | Path) -> list[Path]:
    """The image files of ``data.few_labels.unlabeled_dir``: a folder's images, or a glob's matches.

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
            f"data.few_labels.unlabeled_dir={pattern} is neither a folder nor a glob pattern; "
            "give a folder of images or a pattern such as 'frames/**/*.png'"
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
            f"data.few_labels.unlabeled_dir={pattern} holds no image files "
            f"({', '.join(IMAGE_EXTENSIONS)})"
        )
    return images


class UnlabeledImages(torch.utils.data.Dataset):
    """Images without masks, as ``(image, mask, name)`` items whose mask is all void.

    The void mask lets the images share the train split's transform (a crop pads it like any
    mask) and collation; nothing is learnt from it.

    Args:
        paths: the image files.
        transform: called as ``transform(image, mask)`` on a ``tv_tensors.Image`` and an
            int64 ``tv_tensors.Mask``, as a dataset's training transform.
        read_image: reads an image file as the labelled images are read
            (`seglab.data.images.ImageReader`).
        ignore_index: the void value the mask is filled with.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        transform: Callable[[Any, Any], tuple[Any, Any]],
        read_image: Callable[[Path], torch.Tensor],
        ignore_index: int,
    ) -> None:
        self.paths = list(paths)
        self.transform = transform
        self.read_image = read_image
        self.ignore_index = ignore_index

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        path = self.paths[index]
        try:
            pixels = self.read_image(path)
        except READ_ERRORS as error:
            raise ValueError(
                f"{path}: unreadable unlabelled image ({type(error).__name__}: {error}); "
                "remove it from data.few_labels.unlabeled_dir"
            ) from error
        void = torch.full(pixels.shape[-2:], self.ignore_index, dtype=torch.int64)
        image, mask = self.transform(tv_tensors.Image(pixels), tv_tensors.Mask(void))
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor), str(path)


class FewLabels:
    """A datamodule's loading of few labels: the unlabelled images and the sparse masks.

    Args:
        settings: ``data.few_labels``; its ``unlabeled_dir`` is listed now, so that a missing
            or empty folder is refused before anything trains.
        num_classes: the data's class count.
        ignore_index: the data's void value.
    """

    def __init__(self, settings: FewLabelsSettings, num_classes: int, ignore_index: int) -> None:
        self.settings = settings
        folder = settings.unlabeled_dir
        self.files = None if folder is None else unlabeled_files(folder)
        kind, points, seed = settings.sparse_labels, settings.sparse_points, settings.labeled_seed
        #: what a training mask keeps; None: all of it
        self.sparse = (
            None if kind is None else SparseLabels(kind, points, seed, num_classes, ignore_index)
        )
        #: set by the training method: the unlabelled batch size and how the loaders combine
        self.loading: tuple[int, str] | None = None

    def unlabeled(
        self,
        train: Dataset,
        indices: Sequence[int],
        transform: Callable[[Any, Any], tuple[Any, Any]],
        read_image: Callable[[Path], torch.Tensor],
        ignore_index: int,
    ) -> Dataset | None:
        """The unlabelled images: the samples ``indices`` of the whole ``train`` split (those
        outside the labelled subset), whose masks come along only so that pseudo-labels can
        be scored, never learnt from; then the images of ``unlabeled_dir`` through
        ``transform``, with all-void masks. None when there are none."""
        parts: list[Dataset] = []
        if indices:
            parts.append(Subset(train, list(indices)))
        if self.files is not None:
            parts.append(UnlabeledImages(self.files, transform, read_image, ignore_index))
        return ConcatDataset(parts) if parts else None
