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
  command lines may then set as for a new run;
- a data config from before its options were grouped held them flat (``data.batch_size``):
  they move into their groups (`group_data_keys`, ``data.loader.batch_size``), and every
  interpolation that names one follows.
"""

from __future__ import annotations

import copy
import re
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


#: The groups of a data config's options (`seglab.data.settings`) and the keys each holds,
#: which an earlier seglab wrote flat below ``data``.
DATA_GROUPS = {
    "loader": (
        "batch_size",
        "eval_batch_size",
        "num_workers",
        "pin_memory",
        "persistent_workers",
        "drop_last",
        "repeat_threshold",
    ),
    "splits": (
        "folds",
        "fold",
        "fold_seed",
        "folds_record",
        "holdout",
        "holdout_record",
        "val_fraction",
        "split_seed",
        "split_record",
    ),
    "few_labels": (
        "labeled_fraction",
        "labeled_count",
        "labeled_seed",
        "labeled_record",
        "unlabeled_dir",
        "sparse_labels",
        "sparse_points",
    ),
    "augment": ("scale_range", "crop_size", "hflip", "vflip", "color_jitter"),
    "layout": (
        "image_dir",
        "mask_dir",
        "split_names",
        "split_files",
        "image_extensions",
        "mask_extension",
        "image_suffix",
        "mask_suffix",
        "recursive",
    ),
}
_GROUP_OF = {key: group for group, keys in DATA_GROUPS.items() for key in keys}
# ``data.<moved key>`` where an interpolation names it (``${data.batch_size}``)
_FLAT_DATA_KEY = re.compile(rf"(?<![\w.])data\.({'|'.join(_GROUP_OF)})\b")
# a relative interpolation (``${.seed}``), which moving a value one node down must lengthen
_RELATIVE = re.compile(r"\$\{(\.+)")


def moved_key(key: str) -> str | None:
    """Where today's configs hold the dotted ``key`` that an earlier seglab wrote flat below
    ``data`` (``data.batch_size`` -> ``data.loader.batch_size``); None for any other key."""
    parts = key.split(".")
    if len(parts) < 2 or parts[0] != "data" or parts[1] not in _GROUP_OF:
        return None
    return ".".join(["data", _GROUP_OF[parts[1]], *parts[1:]])


def _renamed_interpolations(node: Any) -> Any:
    """``node`` with each interpolation of a flat data key naming the key in its group."""
    if isinstance(node, dict):
        return {key: _renamed_interpolations(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_renamed_interpolations(value) for value in node]
    if isinstance(node, str) and "${" in node:
        return _FLAT_DATA_KEY.sub(lambda m: f"data.{_GROUP_OF[m.group(1)]}.{m.group(1)}", node)
    return node


def group_data_keys(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the flat options of its ``data`` node moved into their groups, in
    place; a relative interpolation among them (``fold_seed: ${.seed}``) is lengthened by one
    level, so that it still names the same key."""
    data = config.get("data")
    if isinstance(data, dict) and any(key in data for key in _GROUP_OF):
        for key in [key for key in data if key in _GROUP_OF]:
            value = data.pop(key)
            if isinstance(value, str):
                value = _RELATIVE.sub(lambda m: "${." + m.group(1), value)
            data.setdefault(_GROUP_OF[key], {})[key] = value
    config.update(_renamed_interpolations(config))
    return config


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
    group_data_keys(config)
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
