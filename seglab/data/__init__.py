"""Datamodules: one `SegmentationDataModule` subclass per dataset, chosen by ``conf/data``."""

from omegaconf import OmegaConf

from seglab.data.base import DatasetError, SegmentationDataModule
from seglab.data.camvid import CamVidDataModule
from seglab.data.folder import FolderDataModule, MaskDecoder, SegmentationFolder
from seglab.data.synthetic import SyntheticShapes, SyntheticShapesDataModule

# lets data configs derive the class count from the class list: `${len:${.classes}}`
if not OmegaConf.has_resolver("len"):
    OmegaConf.register_new_resolver("len", len)

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
