"""What the boundary metrics add to a validation epoch of a seglab config.

    python scripts/benchmarks/boundary_cost.py [--repeats 3] [--ckpt <run>/checkpoints/best.ckpt]
        [--output outputs/boundary_cost.json] [config overrides, default experiment=camvid_cpu]

One model and one val loader are built from the config, as ``seglab-eval`` builds them, and
validated over the whole val split three ways: ``metrics.boundary.enabled=false``, the shipped
``metrics.boundary`` (Boundary IoU), and Boundary IoU with HD95. The three alternate
``--repeats`` times after one untimed warm-up each; the table gives the median seconds of each
and its ratio to the validation without boundary metrics. The model is untrained unless
``--ckpt`` gives weights: Boundary IoU costs the same whatever the predictions, HD95 grows with
the length of the predicted contours. Prints a table and writes the results as JSON.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig

from seglab.config.spec import resolve_spec
from seglab.engine.checkpoints import load_checkpoint, model_state
from seglab.engine.task import SegmentationTask
from seglab.runs.environment import machine_description
from seglab.runs.spread import spread
from seglab.workflows.build import (
    apply_performance_options,
    build_datamodule,
    build_model,
    build_task,
    setup_data,
    untrained,
)
from seglab.workflows.mounting import compose_config

VARIANTS = {
    "none": {"enabled": False},
    "BoundaryIoU": {"enabled": True, "hd95": False},
    "BoundaryIoU+HD95": {"enabled": True, "hd95": True},
}


def variant_config(cfg: DictConfig, options: dict[str, bool]) -> DictConfig:
    cfg = copy.deepcopy(cfg)
    for key, value in options.items():
        cfg.metrics.boundary[key] = value
    return cfg


def validation_seconds(trainer: pl.Trainer, task: SegmentationTask, loader: Any) -> float:
    start = time.perf_counter()
    trainer.validate(task, dataloaders=loader, verbose=False)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed validations per variant")
    parser.add_argument("--ckpt", type=Path, default=None, help="weights of the model validated")
    parser.add_argument("--output", type=Path, default=Path("outputs/boundary_cost.json"))
    parser.add_argument("overrides", nargs="*", default=["experiment=camvid_cpu"])
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        spec = untrained(
            resolve_spec(compose_config("train", [f"paths.output_dir={scratch}", *args.overrides]))
        )
        cfg = spec.config
        datamodule = build_datamodule(spec)
        setup_data(datamodule, "validate")
        loader = datamodule.val_dataloader()
        model = build_model(spec)
        if args.ckpt is not None:
            model.load_state_dict(model_state(load_checkpoint(args.ckpt)))
        tasks = {}
        for name, options in VARIANTS.items():
            variant = variant_config(cfg, options)
            tasks[name] = build_task(resolve_spec(variant), datamodule, model=model)
            apply_performance_options(resolve_spec(variant), tasks[name], training=False)
        trainer = instantiate(
            spec.trainer,
            default_root_dir=scratch,
            logger=False,
            callbacks=[],
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=False,
            devices=1,
            _convert_="all",
        )
        for task in tasks.values():
            validation_seconds(trainer, task, loader)
        seconds: dict[str, list[float]] = {name: [] for name in tasks}
        for _ in range(args.repeats):
            for name, task in tasks.items():
                seconds[name].append(validation_seconds(trainer, task, loader))

    medians = {name: spread(runs).median for name, runs in seconds.items()}
    results = {
        "overrides": args.overrides,
        "checkpoint": None if args.ckpt is None else str(args.ckpt),
        "val_images": len(loader.dataset),
        "machine": machine_description(),
        "seconds": {name: {"runs": runs, **asdict(spread(runs))} for name, runs in seconds.items()},
        "ratio_to_none": {name: median / medians["none"] for name, median in medians.items()},
    }
    print(f"validation of {results['val_images']} images, {' '.join(args.overrides)}")
    print(f"{'metrics':<18} {'median s':>9} {'ratio':>7}  runs")
    for name, runs in seconds.items():
        listed = ", ".join(f"{run:.2f}" for run in runs)
        ratio = results["ratio_to_none"][name]
        print(f"{name:<18} {medians[name]:9.2f} {ratio:7.3f}  {listed}")
    print(f"cpu: {results['machine']['cpu']}, {results['machine']['cpu_count']} cores")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
