"""Which samples of the train split a run trains on, validates on and learns from without
masks: `plan_splits` cuts it from the `SplitSettings` (``data.splits``) and the labelled
subset's settings (``data.few_labels``), and `write_record` writes each cut's
`SplitRecord` (``folds.json``, ``holdout.json``, ``split.json``, ``labeled.json``)."""

from seglab.data.splits.cuts import LabeledSplit, TrainValSplit, split_labeled
from seglab.data.splits.plan import (
    SplitPlan,
    SplitRecord,
    SplitSettings,
    cuts,
    plan_splits,
    write_record,
)

__all__ = [
    "LabeledSplit",
    "SplitPlan",
    "SplitRecord",
    "SplitSettings",
    "TrainValSplit",
    "cuts",
    "plan_splits",
    "split_labeled",
    "write_record",
]
