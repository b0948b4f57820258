"""Datamodules: one `SegmentationDataModule` subclass per dataset, chosen by ``conf/data``, and
the settings classes of their grouped options (``data.loader``, ``data.splits``, ...)."""

from seglab.data.base import SegmentationDataModule
from seglab.data.camvid import CamVidDataModule
from seglab.data.folder import FolderDataModule, SegmentationFolder
from seglab.data.labels import FewLabelsSettings
from seglab.data.layout import LayoutSettings
from seglab.data.loaders import LoaderSettings
from seglab.data.masks import MaskDecoder
from seglab.data.metadata import DatasetError
from seglab.data.splits import SplitSettings
from seglab.data.synthetic import SyntheticShapes, SyntheticShapesDataModule
from seglab.data.transforms import AugmentSettings

__all__ = [
    "AugmentSettings",
    "CamVidDataModule",
    "DatasetError",
    "FewLabelsSettings",
    "FolderDataModule",
    "LayoutSettings",
    "LoaderSettings",
    "MaskDecoder",
    "SegmentationDataModule",
    "SegmentationFolder",
    "SplitSettings",
    "SyntheticShapes",
    "SyntheticShapesDataModule",
]
