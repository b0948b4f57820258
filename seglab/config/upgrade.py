"""Configs saved by an earlier seglab, brought to today's form before they are trusted or built.

A checkpoint or an ONNX file carries the resolved config of its run, as that run's seglab wrote
it. `upgrade_config` is the one place that knows how those configs differ from today's, so the
builders and commands read every key as today's conf/ writes it, with no fallback of their own:

- seglab's modules moved into packages by job: old ``_target_`` paths are renamed
  (`upgrade_targets`), so such a file is checked against today's allowlist;
- runs from before task modes were multiclass (``mode``, ``threshold`` of conf/train.yaml);
- runs from before training methods were a choice trained supervised (``method``);
- runs from before ``on_nonfinite`` stopped on a non-finite loss, as the default still does;
- an ``inference`` node without a ``_target_`` holds only its options (or is absent: whole
  images), completed by conf/inference/default.yaml;
- a run from before ``metrics`` is scored with conf/metrics/default.yaml, whose keys its
  command lines may then set as for a new run.
"""

from __future__ import annotations

import copy
from typing import Any

from omegaconf import OmegaConf

from seglab.config.location import config_dir

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


def shipped(path: str) -> Any:
    """A plain copy of a shipped config file, or of one of its keys (``train.yaml:mode``)."""
    name, _, key = path.partition(":")
    node = OmegaConf.load(config_dir() / name)
    value = OmegaConf.select(node, key) if key else node
    return copy.deepcopy(OmegaConf.to_container(value) if OmegaConf.is_config(value) else value)


def upgrade_config(config: dict[str, Any]) -> dict[str, Any]:
    """A stored run config (plain containers) in today's form, in place; see the module's
    docstring for each change. A config of today's seglab is left as it is."""
    upgrade_targets(config)
    for key in ("mode", "threshold", "on_nonfinite"):
        if key not in config:
            config[key] = shipped(f"train.yaml:{key}")
    if config.get("method") is None:
        config["method"] = shipped("method/supervised.yaml")
    inference = config.get("inference")
    if not (isinstance(inference, dict) and "_target_" in inference):
        merged = OmegaConf.merge(shipped("inference/default.yaml"), inference or {})
        config["inference"] = OmegaConf.to_container(merged)
    metrics = OmegaConf.merge(shipped("metrics/default.yaml"), config.get("metrics") or {})
    config["metrics"] = OmegaConf.to_container(metrics)
    return config
