"""Where a folder dataset's files are, and how its images pair with their masks.

The default layout is ``<root>/<split>/images/<stem>.<ext>`` with ``<root>/<split>/masks/
<stem>.png``; folder names, split names, file name suffixes, subfolders and split list files
are options (`LayoutSettings`), which covers layouts such as SegNet's CamVid (``train/`` +
``trainannot/``), Cityscapes (``leftImg8bit/train/<city>/<name>_leftImg8bit.png`` with
``gtFine/train/<city>/<name>_gtFine_labelIds.png``), VOC (one image folder and
``ImageSets/Segmentation/<split>.txt``) and ADE20K (``images/training`` +
``annotations/training``). How a file is named by sample is `seglab.data.listing`'s. A dataset
without split folders (``<root>/images`` and ``<root>/masks``) is all train split. With class
folders (``mode`` multilabel) every class has a mask of its own, ``<mask_dir>/<class>/<stem>.png``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from seglab.data.listing import FilePattern, SplitList, listed
from seglab.data.metadata import DatasetError
from seglab.data.scan import MaskFiles
from seglab.data.settings import normalised

#: the image files read from a folder of images alone (seglab-predict,
#: data.few_labels.unlabeled_dir)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# what a folder template starts with when each split has a folder of its own
SPLIT_FOLDER = "{split}/"
#: the splits a layout may name
SPLITS = ("train", "val", "test")


def extension_hint(folder: Path, pattern: FilePattern, names: list[str]) -> str:
    """Where the masks of ``names`` exist with another extension, the key that finds them."""
    found: set[str] = set()
    for name in names:
        wanted = folder / f"{name}{pattern.suffix}"
        if wanted.parent.is_dir():
            found.update(
                path.suffix.lower()
                for path in wanted.parent.iterdir()
                if path.stem == wanted.name and path.is_file()
            )
    first = min(found, default=None)
    return (
        f"; {folder} holds them as {first}: set data.layout.mask_extension={first}" if first else ""
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
        split_files: split -> text file (relative to the root) listing one sample name a line
            (the split takes only those images), or one image path and its mask path a line,
            relative to the root (the split is those pairs). None lists the folders.
        image_extensions: image file extensions, case-insensitive.
        mask_extension: mask file extension.
        image_suffix: what an image's stem ends with after its sample name
            (``_leftImg8bit``); the image ``<name><image_suffix><ext>`` pairs with the mask
            ``<name><mask_suffix><mask_extension>``, and other files are no sample.
        mask_suffix: what a mask's stem ends with after its sample name
            (``_gtFine_labelIds``).
        recursive: also read the subfolders of ``image_dir`` and ``mask_dir`` (one per city or
            scene); an image pairs with the mask at the same path below ``mask_dir``.
    """

    image_dir: str
    mask_dir: str
    split_names: Mapping[str, str]
    split_files: Mapping[str, str] | None
    image_extensions: Sequence[str]
    mask_extension: str
    # defaults: the configs stored before these keys existed pair by equal stems, as then
    image_suffix: str = ""
    mask_suffix: str = ""
    recursive: bool = False

    def __post_init__(self) -> None:
        normalised(
            self,
            image_dir=str(self.image_dir),
            mask_dir=str(self.mask_dir),
            split_names={str(k): str(v) for k, v in dict(self.split_names).items()},
            split_files={str(k): str(v) for k, v in dict(self.split_files or {}).items()},
            image_extensions=[str(ext).lower() for ext in self.image_extensions],
            mask_extension=str(self.mask_extension).lower(),
            image_suffix=str(self.image_suffix or ""),
            mask_suffix=str(self.mask_suffix or ""),
            recursive=bool(self.recursive),
        )
        unknown = sorted(set(self.split_names) - set(SPLITS))
        if unknown or "train" not in self.split_names:
            raise ValueError(
                f"data.layout.split_names={self.split_names} must name the train split and may "
                f"name the val and test splits, as {{train: train, val: val, test: test}}"
            )
        listed_splits = sorted(set(self.split_files) - set(self.split_names))
        if listed_splits:
            raise ValueError(
                f"data.layout.split_files names the split {listed_splits[0]!r}, which "
                f"data.layout.split_names={self.split_names} has not; key each list by train, "
                "val or test, as {train: ImageSets/Segmentation/train.txt}"
            )
        for extension in (*self.image_extensions, self.mask_extension):
            if not extension.startswith("."):
                raise ValueError(
                    f"data.layout: the extension {extension!r} must start with a dot, e.g. .png"
                )
        for kind, suffix in (("image", self.image_suffix), ("mask", self.mask_suffix)):
            if "/" in suffix or "\\" in suffix:
                raise ValueError(
                    f"data.layout.{kind}_suffix={suffix!r} must be the end of a file's stem, "
                    "without folders; set data.layout.recursive=true for subfolders"
                )


class FolderLayout:
    """The folders of a dataset's splits, and the image/mask pairs they hold.

    Args:
        root: dataset folder; the folders of ``settings`` are relative to it.
        settings: the folders, split names, file names and list files (`LayoutSettings`).
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
        self.images = FilePattern(
            "image",
            settings.image_suffix,
            frozenset(settings.image_extensions),
            settings.recursive,
        )
        self.masks = FilePattern(
            "mask", settings.mask_suffix, frozenset({settings.mask_extension}), settings.recursive
        )
        self.class_folders = None if class_folders is None else list(class_folders)

    @property
    def mask_extension(self) -> str:
        """The extension of every mask file."""
        return next(iter(self.masks.extensions))

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

    def pairing(self) -> str:
        """The rule by which an image finds its mask, with the keys that change it."""
        return (
            f"an image {self.images.describe()} pairs with the mask {self.masks.describe()} of "
            f"its name{' at the same path below the mask folder' if self.images.recursive else ''}"
            " (data.layout.image_suffix, data.layout.mask_suffix, data.layout.recursive)"
        )

    def reads_train_images(self, split: str) -> bool:
        """Whether ``split`` would read the train split's image folder: a dataset without split
        folders, which only has a train split."""
        return (
            split != "train"
            and split not in self.split_files
            and self.folder(self.image_dir, split) == self.folder(self.image_dir, "train")
        )

    def split_list(self, split: str) -> SplitList | None:
        """The list file of ``split``, read; None where its folders are listed."""
        if split not in self.split_files:
            return None
        return SplitList.read(self.root / self.split_files[split], self.root)

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
        if split in self.split_files:
            list_file = self.root / self.split_files[split]
            if not list_file.is_file():
                return f"{split} split list {list_file} does not exist"
            if self.split_list(split).pairs:  # type: ignore[union-attr]
                return None
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
                    f"{self.masks.describe()}"
                )
        return folders

    def _names(
        self,
        split: str,
        split_list: SplitList | None,
        images: dict[str, Path],
        masks: list[dict[str, Path]],
    ) -> list[str]:
        """The sample names of ``split``: those its list file names, or every image's,
        refusing listed names without an image and masks without one."""
        image_folder = self.folder(self.image_dir, split)
        if split_list is not None:
            absent = [name for name in split_list.names if name not in images]
            if absent:
                raise DatasetError(
                    f"{split_list.path} lists {len(absent)} stem(s) with no image "
                    f"{self.images.describe()} in {image_folder}: {absent[:5]}; "
                    f"{self.pairing()}"
                )
            return list(split_list.names)
        for folder_masks in masks:
            orphans = [folder_masks[name] for name in folder_masks if name not in images]
            if orphans:
                raise DatasetError(
                    f"{len(orphans)} mask(s) without an image in {image_folder}: "
                    f"{listed(orphans)}; {self.pairing()}"
                )
        return list(images)

    def _listed_pairs(self, split_list: SplitList) -> dict[str, tuple[Path, MaskFiles]]:
        if self.class_folders is not None:
            raise DatasetError(
                f"{split_list.path} lists image/mask pairs, but mode=multilabel reads one mask "
                "per class: list sample names instead, one a line"
            )
        pairs = split_list.checked_pairs()
        # named by path, so that the images of two folders never share a name
        return {
            image.relative_to(self.root).with_suffix("").as_posix(): (image, mask)
            for image, mask in pairs
        }

    def _refuse_empty(
        self, split: str, image_folder: Path, split_list: SplitList | None
    ) -> NoReturn:
        where = "" if split_list is None else f" ({split_list.path} lists none)"
        raise DatasetError(
            f"the {split} split is empty: no images {self.images.describe()} in "
            f"{image_folder}{where}{self.images.missing_hint(image_folder)}"
        )

    def named_pairs(self, split: str) -> dict[str, tuple[Path, MaskFiles]]:
        """``(image, mask)`` paths of ``split`` by sample name, in dataset order (with class
        folders the mask files of every class, in class order); errors name unmatched files,
        missing folders and empty splits."""
        reason = self.unavailable(split)
        if reason is not None:
            raise DatasetError(reason)
        split_list = self.split_list(split)
        if split_list is not None and split_list.pairs:
            return self._listed_pairs(split_list)
        image_folder = self.folder(self.image_dir, split)
        folders = self._mask_folders(split, image_folder)
        images = self.images.files(image_folder)
        masks = [self.masks.files(folder) for folder in folders]
        if not images and split_list is None:
            self._refuse_empty(split, image_folder, split_list)
        names = self._names(split, split_list, images, masks)
        for folder, folder_masks in zip(folders, masks, strict=True):
            unmatched = [name for name in names if name not in folder_masks]
            if unmatched:
                raise DatasetError(
                    f"{len(unmatched)} image(s) without a mask {self.masks.describe()} in "
                    f"{folder}: {listed(images[name] for name in unmatched)}"
                    f"{extension_hint(folder, self.masks, unmatched)}; {self.pairing()}"
                    f"{'' if split_list is None else f'; or remove them from {split_list.path}'}"
                )
        if not names:
            self._refuse_empty(split, image_folder, split_list)
        if self.class_folders is not None:
            return {name: (images[name], tuple(m[name] for m in masks)) for name in names}
        return {name: (images[name], masks[0][name]) for name in names}

    def pairs(self, split: str) -> list[tuple[Path, MaskFiles]]:
        """``(image, mask)`` paths of ``split``, in dataset order (`named_pairs`)."""
        return list(self.named_pairs(split).values())
