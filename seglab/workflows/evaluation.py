"""Scoring a checkpoint, or an ONNX file (``model_path``) in ONNX Runtime, on one split:
``seglab-eval``'s report and its ``metrics.json``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from seglab.config.spec import resolve_spec
from seglab.engine.checkpoints import model_state
from seglab.errors import SeglabError
from seglab.inference.onnx_model import file_model
from seglab.quiet import quiet_lightning
from seglab.visualization.tables import text_table
from seglab.workflows.build import (
    apply_performance_options,
    build_datamodule,
    build_task,
    checkpoint_model,
    setup_data,
    untrained,
)
from seglab.workflows.mounting import command_checkpoint

#: the per-class scores of a report, each with its mean ``m<name>`` over the classes
PER_CLASS = ("IoU", "Dice", "BoundaryIoU", "HD95")


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Score a checkpoint on one split; writes metrics.json to the run dir and returns it.

    ``cfg`` is the checkpoint's run config with the command line on top
    (``seglab.workflows.mounting.mount_checkpoint``), so the data and model are the run's own. With
    ``cfg.model_path`` the network is that ONNX file's, and the config the one it carries.
    """
    model_path = cfg.get("model_path")
    if model_path is None and OmegaConf.is_missing(cfg, "ckpt_path"):
        raise SeglabError(
            "ckpt_path is required: seglab-eval ckpt_path=<run>/checkpoints/best.ckpt "
            "(or model_path=model.onnx)"
        )
    if cfg.split not in ("val", "test"):
        raise SeglabError(f"split={cfg.split} is not one of: val, test")
    checkpoint = command_checkpoint(cfg) if model_path is None else None
    spec = resolve_spec(cfg)
    datamodule = build_datamodule(spec)
    missing = datamodule.split_unavailable(cfg.split)
    if missing is not None:
        raise SeglabError(f"cannot evaluate split={cfg.split}: {missing}")
    setup_data(datamodule, "validate" if cfg.split == "val" else "test")
    if checkpoint is None:
        task = build_task(spec, datamodule, model=file_model(spec))
    else:
        run = untrained(spec)
        # a pruned run's network has the channel counts of its weights
        task = build_task(run, datamodule, model=checkpoint_model(run, model_state(checkpoint)))
        task.load_state_dict(checkpoint["state_dict"])
    apply_performance_options(spec, task, training=False)
    quiet_lightning()
    trainer = instantiate(
        spec.trainer,
        default_root_dir=cfg.paths.output_dir,
        logger=False,
        callbacks=[],
        enable_checkpointing=False,
        enable_model_summary=False,
        devices=1,
        _convert_="all",
    )
    if cfg.split == "val":
        trainer.validate(task, dataloaders=datamodule.val_dataloader(), verbose=False)
    else:
        trainer.test(task, dataloaders=datamodule.test_dataloader(), verbose=False)
    scores = task.scores[cfg.split]
    # Boundary IoU and HD95 only where metrics.boundary computed them
    per_class = [name for name in PER_CLASS if name in scores]
    report = {
        "checkpoint": str(Path(model_path or cfg.ckpt_path).resolve()),
        "split": cfg.split,
        **{f"m{name}": _number(scores[f"m{name}"]) for name in per_class},
        "pixel_accuracy": _number(scores["pixel_accuracy"]),
        "per_class": {
            label: {name: _number(scores[name][i]) for name in per_class}
            for i, label in enumerate(task.classes)
        },
    }
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _number(value: torch.Tensor) -> float | None:
    """JSON has no NaN: a class absent from the split is reported as null."""
    number = float(value)
    return None if math.isnan(number) else number


def format_report(report: dict[str, Any]) -> str:
    """Per-class table followed by the split means, as printed by ``seglab-eval``.

    A class absent from the split has no scores ("absent"); HD95, in pixels, has none either
    for a class that no image holds in both its target and its prediction ("-").
    """
    columns = [name for name in PER_CLASS if f"m{name}" in report]

    def cell(name: str, value: float | None) -> str:
        if name == "HD95":
            return f"{value:.2f}" if value is not None else "-"
        return f"{value:.4f}" if value is not None else "absent"

    rows = [
        [label, *(cell(name, values[name]) for name in columns)]
        for label, values in report["per_class"].items()
    ]
    mean = [["mean", *(cell(name, report[f"m{name}"]) for name in columns)]]
    table = text_table(["class", *columns], rows, "<" + ">" * len(columns), footer=mean)
    return f"{table}\npixel accuracy: {report['pixel_accuracy']:.4f}   split: {report['split']}"
