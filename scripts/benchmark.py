"""Training, data and inference throughput of a seglab config, against a hand-written loop.

    python scripts/benchmark.py [--steps 40 --warmup 5 --repeats 4 --workers 0 1 2]
        [--variant trainer.channels_last=true ...] [--output outputs/benchmark.json]
        [config overrides, default experiment=camvid_cpu]

(a) ``train``: images/s of seglab's own training path (the builders behind ``seglab-train``,
with its callbacks, loggers and progress bar) and of a plain PyTorch loop over the same
Segmenter, loss, optimizer, schedule and data loader, alternated ``--repeats`` times (in
ABBA order); the ratio compares their medians. Each ``--variant`` (overrides added to the
config, e.g. a precision or memory format) is timed through seglab's path too. (b) ``data``:
images/s of the training data loader alone, per worker count. (c) ``inference``: images/s of
the model on batches of the val split at evaluation resolution, logits upsampled to the labels
and argmaxed.

Images/s count the steps after ``--warmup``, from the end of the last warm-up step to the end
of the last step, data loading included. Prints a table and writes the results as JSON.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from seglab.build import (
    apply_performance_options,
    build_datamodule,
    build_task,
    build_trainer,
    setup_data,
)
from seglab.configs import config_dir
from seglab.data import SegmentationDataModule
from seglab.models.layers import resize
from seglab.task import SegmentationTask


def load_config(overrides: list[str], output_dir: Path) -> DictConfig:
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=[f"paths.output_dir={output_dir}", *overrides])
    return cfg


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepClock(pl.Callback):
    """Wall time at the end of every training step (synchronised only there, on a GPU)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        _synchronize(trainer.strategy.root_device)
        self.times.append(time.perf_counter())


def images_per_second(times: list[float], warmup: int, batch_size: int) -> float:
    """Throughput between the end of step ``warmup`` and the end of the last step."""
    # the clock starts at the end of a step, so the first step is never counted
    start = max(warmup, 1)
    if len(times) <= start:
        raise ValueError(f"{len(times)} steps timed; need more than --warmup={warmup}")
    return (len(times) - start) * batch_size / (times[-1] - times[start - 1])


def _bench_cfg(cfg: DictConfig, steps: int) -> DictConfig:
    """The run config limited to ``steps`` training batches and no evaluation."""
    cfg = copy.deepcopy(cfg)
    cfg.trainer.max_epochs = 1
    cfg.trainer.max_time = None
    cfg.trainer.limit_train_batches = steps
    cfg.trainer.limit_val_batches = 0
    cfg.trainer.num_sanity_val_steps = 0
    cfg.trainer.fast_dev_run = False
    cfg.test_after_fit = False
    return cfg


def _prepared(cfg: DictConfig, training: bool) -> tuple[SegmentationDataModule, SegmentationTask]:
    """The datamodule and task of ``cfg`` as ``seglab-train`` (or ``seglab-eval``) builds them."""
    datamodule = build_datamodule(cfg)
    setup_data(datamodule, "fit")
    task = build_task(cfg, datamodule)
    apply_performance_options(cfg, task, training=training)
    return datamodule, task


def seglab_training(cfg: DictConfig, steps: int, warmup: int) -> float:
    """Images/s of the path ``seglab-train`` takes: builders, callbacks, loggers, Trainer.fit."""
    cfg = _bench_cfg(cfg, steps)
    # every measurement writes its checkpoint and events to a directory of its own
    cfg.paths.output_dir = tempfile.mkdtemp(prefix="seglab-", dir=cfg.paths.output_dir)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule, task = _prepared(cfg, training=True)
    trainer = build_trainer(cfg)
    clock = StepClock()
    trainer.callbacks.append(clock)
    trainer.fit(task, datamodule=datamodule)
    return images_per_second(clock.times, warmup, cfg.data.batch_size)


def plain_training(cfg: DictConfig, steps: int, warmup: int) -> float:
    """Images/s of a hand-written loop over the same model, loss, optimizer, schedule and data.

    The model, loss and optimizer come from the same builders so that both paths train the same
    network; everything around them (device placement, autocast, the step) is written out.
    """
    cfg = _bench_cfg(cfg, steps)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule, task = _prepared(cfg, training=True)
    model, loss_fn = task.model, task.loss
    accelerator = cfg.trainer.accelerator
    use_cuda = accelerator in ("gpu", "cuda") or (
        accelerator == "auto" and torch.cuda.is_available()
    )
    device = torch.device("cuda" if use_cuda else "cpu")
    model.to(device).train()
    loss_fn.to(device)
    optimizer = task.optimizer_factory(params=model.parameters())
    scheduler = None
    if task.scheduler_factory is not None:
        scheduler = task.scheduler_factory(optimizer=optimizer, total_steps=steps)
    precision = str(cfg.trainer.precision)
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
    times = []
    loader = datamodule.train_dataloader()
    for step, (images, masks, _) in enumerate(loader):
        if step == steps:
            break
        images = task.in_model_format(images.to(device, non_blocking=True))
        masks = masks.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = loss_fn(model(images), masks)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if scheduler is not None:
            scheduler.step()
        _synchronize(device)
        times.append(time.perf_counter())
    return images_per_second(times, warmup, cfg.data.batch_size)


def data_throughput(cfg: DictConfig, workers: int, batches: int) -> float:
    """Images/s of the training loader alone with ``workers`` processes (first batch excluded,
    as it waits for the workers to start)."""
    cfg = copy.deepcopy(cfg)
    cfg.data.num_workers = workers
    cfg.data.persistent_workers = False
    datamodule = build_datamodule(cfg)
    setup_data(datamodule, "fit")
    times = []
    for index, _ in enumerate(datamodule.train_dataloader()):
        times.append(time.perf_counter())
        if index == batches:
            break
    return images_per_second(times, 1, cfg.data.batch_size)


def inference_throughput(cfg: DictConfig, batches: int, warmup: int) -> float:
    """Images/s of the model on val batches already in memory: forward, upsample, argmax."""
    datamodule, task = _prepared(cfg, training=False)
    model = task.model.eval()
    images, masks, _ = next(iter(datamodule.val_dataloader()))
    images = task.in_model_format(images)
    times = []
    with torch.inference_mode():
        for _ in range(batches + warmup):
            resize(model(images), masks.shape[-2:]).argmax(1)
            times.append(time.perf_counter())
    return images_per_second(times, warmup, images.shape[0])


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="training steps per measurement")
    parser.add_argument("--warmup", type=int, default=5, help="steps left out of each timing")
    parser.add_argument("--repeats", type=int, default=4, help="alternations seglab/plain loop")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data-batches", type=int, default=10)
    parser.add_argument("--inference-batches", type=int, default=5)
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="space-separated overrides timed through seglab's path, e.g. "
        "'trainer.channels_last=true'; repeatable",
    )
    parser.add_argument("--output", type=Path, default=Path("outputs/benchmark.json"))
    parser.add_argument("overrides", nargs="*", default=["experiment=camvid_cpu"])
    args = parser.parse_args(argv)
    if args.steps <= args.warmup:
        parser.error(f"--steps={args.steps} must exceed --warmup={args.warmup}")

    with tempfile.TemporaryDirectory() as folder:
        cfg = load_config(args.overrides, Path(folder))
        results: dict[str, Any] = {
            "command": shlex.join(["python", "scripts/benchmark.py", *(argv or sys.argv[1:])]),
            "overrides": args.overrides,
            "machine": machine(),
            "batch_size": cfg.data.batch_size,
            "data": OmegaConf.to_container(cfg.data, resolve=True),
        }
        seglab_runs, plain_runs = [], []
        for repeat in range(args.repeats):
            # plain, seglab, seglab, plain, ...: a machine that speeds up or slows down during
            # the benchmark favours neither side
            for side in ("plain", "seglab") if repeat % 2 == 0 else ("seglab", "plain"):
                if side == "plain":
                    plain_runs.append(plain_training(cfg, args.steps, args.warmup))
                else:
                    seglab_runs.append(seglab_training(cfg, args.steps, args.warmup))
        results["train"] = {
            "seglab_images_per_s": seglab_runs,
            "plain_images_per_s": plain_runs,
            "ratio": statistics.median(seglab_runs) / statistics.median(plain_runs),
        }
        variants = {}
        for variant in args.variant:
            variant_cfg = load_config([*args.overrides, *variant.split()], Path(folder))
            variants[variant] = seglab_training(variant_cfg, args.steps, args.warmup)
        results["variants"] = variants
        results["data_images_per_s"] = {
            str(workers): data_throughput(cfg, workers, args.data_batches)
            for workers in args.workers
        }
        results["inference_images_per_s"] = inference_throughput(
            cfg, args.inference_batches, warmup=1
        )

    rows = [
        ("train, seglab", "median of " + ", ".join(f"{v:.2f}" for v in seglab_runs)),
        ("train, plain loop", "median of " + ", ".join(f"{v:.2f}" for v in plain_runs)),
        ("train, seglab / plain (ratio)", f"{results['train']['ratio']:.3f}"),
        *((f"train, seglab, {name}", f"{value:.2f}") for name, value in variants.items()),
        *(
            (f"data, {workers} workers", f"{value:.1f}")
            for workers, value in results["data_images_per_s"].items()
        ),
        ("inference", f"{results['inference_images_per_s']:.2f}"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"{'measurement':<{width}}  images/s")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
