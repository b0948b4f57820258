"""Training, data and inference throughput of a seglab config, against a hand-written loop.

    python scripts/benchmarks/benchmark.py [--steps 40 --warmup 5 --repeats 4 --workers 0 1 2]
        [--variant trainer.channels_last=true ...] [--output outputs/benchmark.json]
        [config overrides, default experiment=camvid_cpu]

(a) ``train``: images/s of a training epoch as ``seglab-train`` runs it, against a plain
PyTorch loop doing the same work. The epoch is ``--steps`` training steps followed by what
ends every epoch of a run: a validation over the whole val split, best.ckpt and last.ckpt.
seglab's side is the builders behind ``seglab-train`` with every callback and logger of the
config (the prediction-grid and confusion-matrix images, TensorBoard scalars, the progress
bar, atomic checkpoint writes). The plain loop trains the same Segmenter with the same loss,
optimizer, schedule and data loader, then validates as the task does (same autocast, logits
upsampled to the labels, the loss and one confusion matrix over the split, its scores) and
saves model, optimizer and schedule with ``torch.save`` as best.ckpt and last.ckpt; it logs
nothing, so the ratio includes the cost of seglab's logging. The two alternate ``--repeats``
times (in ABBA order); the ratio compares their medians, and the spread of the repeats, per
side, says how far to trust it. Each ``--variant`` (overrides added to the config, e.g. a
precision or memory format) is timed through seglab's path too. (b) ``data``: images/s of the
training data loader alone, per worker count. (c) ``inference``: images/s of the model on
batches of the val split at evaluation resolution, logits upsampled to the labels and argmaxed.

Training images/s count the steps after ``--warmup``, from the end of the last warm-up step to
the end of the epoch (its validation and checkpoints included), data loading included. Set-up
before the first step and the test after training are left out of both sides. Prints a table
and writes the results as JSON.
"""

from __future__ import annotations

import argparse
import copy
import json
import shlex
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from seglab.config.spec import resolve_spec
from seglab.data import SegmentationDataModule
from seglab.engine.task import SegmentationTask
from seglab.metrics.confusion import segmentation_scores
from seglab.models.layers import resize
from seglab.runs.environment import machine_description
from seglab.runs.spread import spread
from seglab.workflows.build import (
    apply_performance_options,
    build_datamodule,
    build_task,
    build_trainer,
    setup_data,
)
from seglab.workflows.mounting import compose_config

#: CPU features that decide how fast bf16 autocast runs (without them bf16 is emulated)
CPU_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile")


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepClock(pl.Callback):
    """Wall time at the end of every training step and at the end of training, after the last
    validation and checkpoints (synchronised only there, on a GPU)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.end: float | None = None

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        _synchronize(trainer.strategy.root_device)
        self.times.append(time.perf_counter())

    def on_train_end(self, trainer: pl.Trainer, *args: Any) -> None:
        _synchronize(trainer.strategy.root_device)
        self.end = time.perf_counter()


def images_per_second(
    times: list[float], warmup: int, batch_size: int, end: float | None = None
) -> float:
    """Throughput between the end of step ``warmup`` and ``end`` (by default the end of the
    last step) of the steps after ``warmup``."""
    # the clock starts at the end of a step, so the first step is never counted
    start = max(warmup, 1)
    if len(times) <= start:
        raise ValueError(f"{len(times)} steps timed; need more than --warmup={warmup}")
    stop = times[-1] if end is None else end
    return (len(times) - start) * batch_size / (stop - times[start - 1])


def _bench_cfg(cfg: DictConfig, steps: int) -> DictConfig:
    """The run config limited to one epoch of ``steps`` training batches, which ends, as every
    epoch of a run does, with a validation over the whole val split and its checkpoints."""
    cfg = copy.deepcopy(cfg)
    cfg.trainer.max_epochs = 1
    cfg.trainer.max_time = None
    cfg.trainer.limit_train_batches = steps
    cfg.trainer.limit_val_batches = None
    # at the end of the epoch, whatever the config's schedule (a time-based val_check_interval
    # would not come round in a run this short)
    cfg.trainer.check_val_every_n_epoch = 1
    with open_dict(cfg.trainer):
        cfg.trainer.val_check_interval = 1.0
    # the sanity check runs before the clock starts, and would start the val loader's workers
    # untimed on seglab's side only
    cfg.trainer.num_sanity_val_steps = 0
    cfg.trainer.fast_dev_run = False
    cfg.test_after_fit = False
    return cfg


def _prepared(cfg: DictConfig, training: bool) -> tuple[SegmentationDataModule, SegmentationTask]:
    """The datamodule and task of ``cfg`` as ``seglab-train`` (or ``seglab-eval``) builds them."""
    datamodule = build_datamodule(resolve_spec(cfg))
    setup_data(datamodule, "fit")
    task = build_task(resolve_spec(cfg), datamodule)
    apply_performance_options(resolve_spec(cfg), task, training=training)
    return datamodule, task


def seglab_training(cfg: DictConfig, steps: int, warmup: int) -> float:
    """Images/s of the path ``seglab-train`` takes: builders, callbacks, loggers, Trainer.fit,
    until the epoch's validation, images and checkpoints are done."""
    cfg = _bench_cfg(cfg, steps)
    # every measurement writes its checkpoints and events to a directory of its own
    cfg.paths.output_dir = tempfile.mkdtemp(prefix="seglab-", dir=cfg.paths.output_dir)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule, task = _prepared(cfg, training=True)
    trainer = build_trainer(resolve_spec(cfg))
    clock = StepClock()
    trainer.callbacks.append(clock)
    trainer.fit(task, datamodule=datamodule)
    return images_per_second(clock.times, warmup, cfg.data.loader.batch_size, end=clock.end)


def plain_validation(
    task: SegmentationTask,
    datamodule: SegmentationDataModule,
    device: torch.device,
    autocast: torch.autocast,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss and confusion matrix (rows: truth) over the val split, computed the way the
    task's validation computes them, with the confusion matrix counted by hand as in
    torchvision's segmentation references."""
    model, loss_fn = task.model, task.loss
    num_classes, ignore_index = len(task.classes), datamodule.ignore_index
    confmat = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)
    loss_sum, count = torch.zeros((), device=device), 0
    model.eval()
    with torch.inference_mode(), autocast:
        for images, masks, _ in datamodule.val_dataloader():
            images = task.in_model_format(images.to(device, non_blocking=True))
            masks = masks.to(device, non_blocking=True)
            logits = model(images) if task.inferer is None else task.inferer.logits(images)
            logits = resize(logits, masks.shape[-2:])
            loss_sum += loss_fn(logits, masks) * images.shape[0]
            count += images.shape[0]
            valid = masks != ignore_index
            cells = masks[valid] * num_classes + logits.argmax(1)[valid]
            confmat += torch.bincount(cells, minlength=num_classes**2).view(
                num_classes, num_classes
            )
    model.train()
    return loss_sum / count, confmat


def plain_training(cfg: DictConfig, steps: int, warmup: int) -> float:
    """Images/s of a hand-written epoch over the same model, loss, optimizer, schedule and data:
    training steps, a validation of the val split, best.ckpt and last.ckpt.

    The model, loss and optimizer come from the same builders so that both paths train the same
    network; everything around them (device placement, autocast, the step, the validation and
    the checkpoints) is written out.
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

    def autocast() -> torch.autocast:
        return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)

    checkpoints = Path(tempfile.mkdtemp(prefix="plain-", dir=cfg.paths.output_dir))
    times = []
    loader = datamodule.train_dataloader()
    for step, (images, masks, _) in enumerate(loader):
        if step == steps:
            break
        images = task.in_model_format(images.to(device, non_blocking=True))
        masks = masks.to(device, non_blocking=True)
        with autocast():
            loss = loss_fn(model(images), masks)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if scheduler is not None:
            scheduler.step()
        _synchronize(device)
        times.append(time.perf_counter())
    val_loss, confmat = plain_validation(task, datamodule, device, autocast())
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "step": steps,
        "val_loss": float(val_loss),
        "val_mIoU": float(segmentation_scores(confmat)["mIoU"]),
        "confusion_matrix": confmat.cpu(),
    }
    # the first validation of a run is always its best so far
    torch.save(state, checkpoints / "best.ckpt")
    torch.save(state, checkpoints / "last.ckpt")
    _synchronize(device)
    return images_per_second(times, warmup, cfg.data.loader.batch_size, end=time.perf_counter())


def data_throughput(cfg: DictConfig, workers: int, batches: int) -> float:
    """Images/s of the training loader alone with ``workers`` processes (first batch excluded,
    as it waits for the workers to start)."""
    cfg = copy.deepcopy(cfg)
    cfg.data.loader.num_workers = workers
    cfg.data.loader.persistent_workers = False
    datamodule = build_datamodule(resolve_spec(cfg))
    setup_data(datamodule, "fit")
    times = []
    for index, _ in enumerate(datamodule.train_dataloader()):
        times.append(time.perf_counter())
        if index == batches:
            break
    return images_per_second(times, 1, cfg.data.loader.batch_size)


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


def _repeats(values: list[float], summary: dict[str, Any]) -> str:
    """A table cell: the median, each repeat, and how far the repeats spread."""
    listed = ", ".join(f"{value:.2f}" for value in values)
    return (
        f"median {summary['median']:.2f} of {listed} "
        f"(min {summary['min']:.2f}, max {summary['max']:.2f}, "
        f"spread {summary['relative_spread']:.1%})"
    )


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
        output_dir = f"paths.output_dir={folder}"
        cfg = compose_config("train", [output_dir, *args.overrides])
        results: dict[str, Any] = {
            "command": shlex.join(
                ["python", "scripts/benchmarks/benchmark.py", *(argv or sys.argv[1:])]
            ),
            "overrides": args.overrides,
            "machine": machine_description(CPU_FLAGS),
            "batch_size": cfg.data.loader.batch_size,
            "data": OmegaConf.to_container(cfg.data, resolve=True),
        }
        seglab_runs: list[float] = []
        plain_runs: list[float] = []
        for repeat in range(args.repeats):
            # plain, seglab, seglab, plain, ...: a machine that speeds up or slows down during
            # the benchmark favours neither side
            for side in ("plain", "seglab") if repeat % 2 == 0 else ("seglab", "plain"):
                if side == "plain":
                    plain_runs.append(plain_training(cfg, args.steps, args.warmup))
                else:
                    seglab_runs.append(seglab_training(cfg, args.steps, args.warmup))
        seglab, plain = spread(seglab_runs), spread(plain_runs)
        results["train"] = {
            "steps": args.steps,
            "warmup": args.warmup,
            "seglab_images_per_s": seglab_runs,
            "plain_images_per_s": plain_runs,
            "seglab": asdict(seglab),
            "plain": asdict(plain),
            "ratio": seglab.median / plain.median,
        }
        variants = {}
        for variant in args.variant:
            variant_cfg = compose_config("train", [output_dir, *args.overrides, *variant.split()])
            variants[variant] = seglab_training(variant_cfg, args.steps, args.warmup)
        results["variants"] = variants
        results["data_images_per_s"] = {
            str(workers): data_throughput(cfg, workers, args.data_batches)
            for workers in args.workers
        }
        results["inference_images_per_s"] = inference_throughput(
            cfg, args.inference_batches, warmup=1
        )

    train = results["train"]
    rows = [
        ("train, seglab", _repeats(seglab_runs, train["seglab"])),
        ("train, plain loop", _repeats(plain_runs, train["plain"])),
        (
            "train, seglab / plain (ratio)",
            f"{train['ratio']:.3f} (repeats spread: seglab {train['seglab']['relative_spread']:.1%}"
            f", plain {train['plain']['relative_spread']:.1%})",
        ),
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
