"""Configs saved by an earlier seglab, brought to today's form before they are trusted or built.

seglab's modules moved into packages by job; a checkpoint or an ONNX file written before names
the old paths in its ``_target_`` values. `upgrade_targets` maps them, so such a file is checked
against today's allowlist and builds today's classes.
"""

from __future__ import annotations

from typing import Any

#: ``_target_`` values an earlier seglab wrote, and where each now lives.
MOVED_TARGETS = {
    "seglab.callbacks.ConfusionMatrixImage": "seglab.engine.callbacks.ConfusionMatrixImage",
    "seglab.callbacks.HeadlineCharts": "seglab.engine.callbacks.HeadlineCharts",
    "seglab.callbacks.PredictionGrid": "seglab.engine.callbacks.PredictionGrid",
    "seglab.callbacks.RunSummary": "seglab.engine.callbacks.RunSummary",
    "seglab.checkpoints.StopOnSignal": "seglab.engine.checkpoints.StopOnSignal",
    "seglab.inference.Inferer": "seglab.inference.inferer.Inferer",
    "seglab.inference.TTA": "seglab.inference.inferer.TTA",
    "seglab.mlflow_logging.MLflowRunLogger": "seglab.sweeps.mlflow_logging.MLflowRunLogger",
    "seglab.runs.RunDirGuard": "seglab.runs.directories.RunDirGuard",
    "seglab.schedulers.constant": "seglab.engine.schedulers.constant",
    "seglab.schedulers.cosine": "seglab.engine.schedulers.cosine",
    "seglab.schedulers.poly": "seglab.engine.schedulers.poly",
    "seglab.sweep_hparams.SweepExperiment": "seglab.sweeps.hparams.SweepExperiment",
}


def upgrade_targets(node: Any) -> Any:
    """``node`` (plain dicts and lists) with every moved ``_target_`` renamed, in place."""
    if isinstance(node, dict):
        target = node.get("_target_")
        if isinstance(target, str) and target in MOVED_TARGETS:
            node["_target_"] = MOVED_TARGETS[target]
        for value in node.values():
            upgrade_targets(value)
    elif isinstance(node, list):
        for value in node:
            upgrade_targets(value)
    return node
