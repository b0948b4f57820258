"""Segmentation losses on logits ``(N, C, H, W)`` and integer targets, for every task mode.

Each loss takes ``mode`` (``multiclass``, ``binary`` or ``multilabel``; the shapes of each are
in :mod:`seglab.losses.modes`) and refuses at construction a mode it does not fit, and takes
the dataset's ``ignore_index`` so that void pixels (e.g. 255 in VOC/CamVid) contribute neither
to the value nor to the gradient.

==========================  ==========  ======  ==========
loss                        multiclass  binary  multilabel
==========================  ==========  ======  ==========
CrossEntropyLoss            yes         no      no
BinaryCrossEntropyLoss      no          yes     yes
FocalLoss                   softmax     sigmoid sigmoid
DiceLoss, TverskyLoss       softmax     sigmoid sigmoid
LovaszLoss                  softmax     hinge   hinge
==========================  ==========  ======  ==========

:class:`WeightedSumLoss` adds up any of them, each with its own mode.
"""

from seglab.losses.cross_entropy import BinaryCrossEntropyLoss, CrossEntropyLoss, FocalLoss
from seglab.losses.lovasz import LovaszLoss
from seglab.losses.modes import MODES
from seglab.losses.overlap import DiceLoss, TverskyLoss
from seglab.losses.weighted_sum import WeightedSumLoss

__all__ = [
    "MODES",
    "BinaryCrossEntropyLoss",
    "CrossEntropyLoss",
    "DiceLoss",
    "FocalLoss",
    "LovaszLoss",
    "TverskyLoss",
    "WeightedSumLoss",
]
