"""Datamodules: one `SegmentationDataModule` subclass per dataset, chosen by ``conf/data``."""

from seglab.data.base import DatasetError, SegmentationDataModule
from seglab.data.camvid import CamVidDataModule
from seglab.data.folder import FolderDataModule, MaskDecoder, SegmentationFolder
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
