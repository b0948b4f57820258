"""Datamodules: one `SegmentationDataModule` subclass per dataset, chosen by ``conf/data``."""

from seglab.data.base import SegmentationDataModule
from seglab.data.camvid import CamVidDataModule
from seglab.data.folder import FolderDataModule, SegmentationFolder
from seglab.data.masks import MaskDecoder
from seglab.data.metadata import DatasetError
from seglab.data.synthetic import SyntheticShapes, SyntheticShapesDataModule

__all__ = [
    "CamVidDataModule",
    "DatasetError",
    "FolderDataModule",
    "MaskDecoder",
    "SegmentationDataModule",
    "SegmentationFolder",
    "SyntheticShapes",
    "SyntheticShapesDataModule",
]
