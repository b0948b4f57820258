"""Training methods (``conf/method``): how a task learns from its training batches, labelled
alone or with unlabelled images beside them."""

from seglab.methods.base import StepLoss, TrainingMethod
from seglab.methods.fixmatch import FixMatch
from seglab.methods.mean_teacher import MeanTeacher
from seglab.methods.supervised import Supervised

__all__ = ["FixMatch", "MeanTeacher", "StepLoss", "Supervised", "TrainingMethod"]
