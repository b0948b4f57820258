"""Datamodules: one `SegmentationDataModule` subclass per dataset, chosen by ``conf/data``."""

from seglab.data.base import SegmentationDataModule
from seglab.data.synthetic import SyntheticShapes, SyntheticShapesDataModule

__all__ = ["SegmentationDataModule", "SyntheticShapes", "SyntheticShapesDataModule"]
