"""Where a folder dataset's files are, and how its images pair with their masks.

The default layout is ``<root>/<split>/images/<stem>.<ext>`` with ``<root>/<split>/masks/
<stem>.png``; folder names, split names and split list files are options, which also covers
layouts such as SegNet's CamVid (``train/`` + ``trainannot/``) or VOC (one image folder and
``ImageSets/Segmentation/<split>.txt``). A dataset without split folders (``<root>/images``
and ``<root>/masks``) is all train split. With class folders (``mode`` multilabel) every class
has a mask of its own, ``<mask_dir>/<class>/<stem>.png``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from seglab.data.metadata import DatasetError
from seglab.data.scan import MaskFiles
from seglab.data.settings import normalised

#: the image files read from a folder of images alone (seglab-predict,
#: data.few_labels.unlabeled_dir)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# how many unmatched files an error names before it only counts the rest
MAX_LISTED_FILES = 5
# what a folder template starts with when each split has a folder of its own
SPLIT_FOLDER = "{split}/"
#: the splits a layout may name
SPLITS = ("train", "val", "test")


def files_by_stem(folder: Path, extensions: set[str]) -> dict[str, Path]:
    """The files of ``folder`` with one of ``extensions`` (lower case), by stem, in name
    order; hidden files are left out, and two files of one stem are refused."""
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


def extension_hint(folder: Path, stems: set[str]) -> str:
    """Where the masks of ``stems`` exist with another extension, the key that finds them."""
    found = sorted({p.suffix.lower() for p in folder.iterdir() if p.stem in stems and p.is_file()})
    return (
        f"; {folder} holds them as {found[0]}: set data.layout.mask_extension={found[0]}"
        if found
        else ""
    )


@dataclass(frozen=True)
class LayoutSettings:
    """``data.layout``: where a folder dataset's files are below its root, checked when made.

    Attributes:
        image_dir: folder of a split's images; ``{split}`` stands for the split's name in
            ``split_names``. Where ``<root>/{split}/...`` has no train folder but ``<root>/...``
            exists, the dataset has no split folders: all its images are the train split.
        mask_dir: folder of a split's masks, same convention; in ``mode`` multilabel it holds
            one folder per class, named as in ``classes``, of that class's masks.
        split_names: name of the train, val and test splits in ``image_dir``/``mask_dir``.
        split_files: split -> text file (relative to the root) listing one image stem per
            line; those splits take only the listed images. None lists the folders.
        image_extensions: image file extensions, case-insensitive.
        mask_extension: mask file extension.
    """

    image_dir: str
    mask_dir: str
    split_names: Mapping[str, str]
    split_files: Mapping[str, str] | None
    image_extensions: Sequence[str]
    mask_extension: str

    def __post_init__(self) -> None:
        normalised(
            self,
            image_dir=str(self.image_dir),
            mask_dir=str(self.mask_dir),
            split_names={str(k): str(v) for k, v in dict(self.split_names).items()},
            split_files={str(k): str(v) for k, v in dict(self.split_files or {}).items()},
            image_extensions=[str(ext).lower() for ext in self.image_extensions],
            mask_extension=str(self.mask_extension).lower(),
        )
        unknown = sorted(set(self.split_names) - set(SPLITS))
        if unknown or "train" not in self.split_names:
            raise ValueError(
                f"data.layout.split_names={self.split_names} must name the train split and may "
                f"name the val and test splits, as {{train: train, val: val, test: test}}"
            )
        for extension in (*self.image_extensions, self.mask_extension):
            if not extension.startswith("."):
                raise ValueError(
                    f"data.layout: the extension {extension!r} must start with a dot, e.g. .png"
                )


class FolderLayout:
    """The folders of a dataset's splits, and the image/mask pairs they hold.

    Args:
        root: dataset folder; the folders of ``settings`` are relative to it.
        settings: the folders, split names and file extensions (`LayoutSettings`).
        class_folders: the classes whose folders below ``mask_dir`` hold one mask per image
            each (``mode`` multilabel); None: one mask file per image in ``mask_dir``.
    """

    def __init__(
        self, root: str | Path, settings: LayoutSettings, class_folders: Sequence[str] | None
    ) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DatasetError(f"data.root={root} is not a folder")
        self.split_names = dict(settings.split_names)
        self.split_files = dict(settings.split_files or {})
        self.image_dir, self.mask_dir = self._templates(settings.image_dir, settings.mask_dir)
        self.image_extensions = set(settings.image_extensions)
        self.mask_extension = settings.mask_extension
        self.class_folders = None if class_folders is None else list(class_folders)

    def folder(self, template: str, split: str) -> Path:
        """The folder ``template`` names for ``split``."""
        return self.root / template.format(split=self.split_names[split])

    def _templates(self, image_dir: str, mask_dir: str) -> tuple[str, str]:
        """The folder templates, without their ``{split}/`` where the dataset has no split
        folders: no ``<root>/train/images`` but a ``<root>/images``."""
        split_folders = image_dir.startswith(SPLIT_FOLDER) and mask_dir.startswith(SPLIT_FOLDER)
        if self.split_files or not split_folders or self.folder(image_dir, "train").is_dir():
            return image_dir, mask_dir
        flat = image_dir.removeprefix(SPLIT_FOLDER), mask_dir.removeprefix(SPLIT_FOLDER)
        return flat if (self.root / flat[0]).is_dir() else (image_dir, mask_dir)

    def reads_train_images(self, split: str) -> bool:
        """Whether ``split`` would read the train split's image folder: a dataset without split
        folders, which only has a train split."""
        return (
            split != "train"
            and split not in self.split_files
            and self.folder(self.image_dir, split) == self.folder(self.image_dir, "train")
        )

    def unavailable(self, split: str) -> str | None:
        """Why the files of ``split`` cannot be listed, or None when they can."""
        if split not in self.split_names:
            return f"data.layout.split_names={self.split_names} has no {split!r} split"
        if self.reads_train_images(split):
            images = self.folder(self.image_dir, "train")
            if split == "val":
                return (
                    f"{images} holds all the images, without split folders ({split}/images), so "
                    "there is no val split: set data.splits.val_fraction=0.2 to validate on a "
                    "share of the images"
                )
            return f"no {split} split: {images} holds all the images, without split folders"
        if split in self.split_files and not (self.root / self.split_files[split]).is_file():
            return f"{split} split list {self.root / self.split_files[split]} does not exist"
        images = self.folder(self.image_dir, split)
        if not images.is_dir():
            return f"{split} split folder {images} does not exist"
        return None

    def _mask_folders(self, split: str, image_folder: Path) -> list[Path]:
        mask_folder = self.folder(self.mask_dir, split)
        if not mask_folder.is_dir():
            raise DatasetError(
                f"mask folder {mask_folder} of the {split} split does not exist (its images are "
                f"in {image_folder}); set data.layout.mask_dir"
            )
        if self.class_folders is None:
            return [mask_folder]
        folders = [mask_folder / name for name in self.class_folders]
        for folder in folders:
            if not folder.is_dir():
                raise DatasetError(
                    f"class mask folder {folder} of the {split} split does not exist; in "
                    f"mode=multilabel every class has a folder <mask_dir>/<class> of masks "
                    f"<stem>{self.mask_extension}"
                )
        return folders

    def _stems(
        self, split: str, images: dict[str, Path], masks: list[dict[str, Path]]
    ) -> list[str]:
        """The stems of ``split``: those its list file names, or every image's, refusing
        listed stems without an image and masks without one."""
        image_folder = self.folder(self.image_dir, split)
        if split in self.split_files:
            list_file = self.root / self.split_files[split]
            stems = [line.strip() for line in list_file.read_text().splitlines() if line.strip()]
            absent = [stem for stem in stems if stem not in images]
            if absent:
                raise DatasetError(
                    f"{list_file} lists {len(absent)} stem(s) with no image in {image_folder}: "
                    f"{absent[:MAX_LISTED_FILES]}"
                )
            return stems
        for folder_masks in masks:
            orphans = [folder_masks[stem] for stem in folder_masks if stem not in images]
            if orphans:
                raise DatasetError(
                    f"{len(orphans)} mask(s) without an image in {image_folder}: "
                    f"{[str(p) for p in orphans[:MAX_LISTED_FILES]]}"
                )
        return list(images)

    def pairs(self, split: str) -> list[tuple[Path, MaskFiles]]:
        """``(image, mask)`` paths of ``split`` (with class folders the mask files of every
        class, in class order); errors name unmatched files, missing folders, empty splits."""
        reason = self.unavailable(split)
        if reason is not None:
            raise DatasetError(reason)
        image_folder = self.folder(self.image_dir, split)
        folders = self._mask_folders(split, image_folder)
        images = files_by_stem(image_folder, self.image_extensions)
        masks = [files_by_stem(folder, {self.mask_extension}) for folder in folders]
        stems = self._stems(split, images, masks)
        for folder, folder_masks in zip(folders, masks, strict=True):
            unmatched = [images[stem] for stem in stems if stem not in folder_masks]
            if unmatched:
                raise DatasetError(
                    f"{len(unmatched)} image(s) without a mask <stem>{self.mask_extension} in "
                    f"{folder}: {[str(p) for p in unmatched[:MAX_LISTED_FILES]]}"
                    f"{extension_hint(folder, {p.stem for p in unmatched})}"
                )
        if not stems:
            raise DatasetError(
                f"the {split} split is empty: no {sorted(self.image_extensions)} images in "
                f"{image_folder}"
            )
        if self.class_folders is not None:
            return [(images[stem], tuple(m[stem] for m in masks)) for stem in stems]
        return [(images[stem], masks[0][stem]) for stem in stems]
