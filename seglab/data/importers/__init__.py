"""Annotation tools' exports turned into seglab's folder layout (``seglab-data import``):
one module per tool reads its export into an `Export` (`seglab.data.importers.dataset`), and
`seglab.data.importers.writer` writes it, with a data config to train on it."""

from seglab.data.importers.coco import read_coco
from seglab.data.importers.cvat import read_cvat
from seglab.data.importers.dataset import Export, Sample
from seglab.data.importers.label_studio import read_label_studio
from seglab.data.importers.labelme import read_labelme
from seglab.data.importers.writer import train_command, write_export

__all__ = [
    "Export",
    "Sample",
    "read_coco",
    "read_cvat",
    "read_label_studio",
    "read_labelme",
    "train_command",
    "write_export",
]
