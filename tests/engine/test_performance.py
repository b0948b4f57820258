"""Performance options, the absence of per-step host synchronisation, and the benchmark script
on a tiny setting (its numbers are never checked: they belong to docs/benchmarks.md; what it
reports and what each measurement does are)."""

from __future__ import annotations

import json
import runpy
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

from seglab.config.spec import resolve_spec
from seglab.engine.task import SegmentationTask
from seglab.errors import SeglabError
from seglab.runs.directories import load_events
from seglab.workflows.build import (
    apply_performance_options,
    build_datamodule,
    build_task,
    build_trainer,
    setup_data,
)

SCRIPT = Path(__file__).parents[2] / "scripts" / "benchmarks" / "benchmark.py"
TINY = [
    "data=synthetic",
    "data.image_size=32",
    "data.num_train=96",
    "data.num_val=8",
    "data.num_test=8",
    "data.loader.batch_size=4",
    "data.loader.num_workers=0",
    "model.encoder.widths=[8,16,32]",
    "trainer.enable_model_summary=false",
]


def _config(compose, tmp_path: Path, *overrides: str) -> DictConfig:
    return compose("train", f"paths.output_dir={tmp_path}", *TINY, *overrides)


def _fit(cfg: DictConfig, *callbacks: pl.Callback) -> SegmentationTask:
    datamodule = build_datamodule(resolve_spec(cfg))
    setup_data(datamodule, "fit")
    task = build_task(resolve_spec(cfg), datamodule)
    apply_performance_options(resolve_spec(cfg), task, training=True)
    trainer = build_trainer(resolve_spec(cfg))
    trainer.callbacks.extend(callbacks)
    trainer.fit(task, datamodule=datamodule)
    return task


#: every way a tensor's value reaches Python: on an accelerator each one waits for the device
OPTIM_DIR = str(Path(torch.optim.__file__).parent)
HOST_READS = ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__")


class HostReadCounter(pl.Callback):
    """Counts host reads of tensors from the second training step to the end of the epoch."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.counting = False
        self.counts: Counter[str] = Counter()
        for name in HOST_READS:
            original = getattr(torch.Tensor, name)

            def counted(tensor: torch.Tensor, *args: Any, _name=name, _original=original) -> Any:
                # torch's optimizers read their step counter, which stays in host memory
                # (on an accelerator too), so those reads wait for nothing
                caller = sys._getframe(1).f_code.co_filename
                if self.counting and OPTIM_DIR not in caller:
                    self.counts[_name] += 1
                return _original(tensor, *args)

            monkeypatch.setattr(torch.Tensor, name, counted)

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step >= 1:
            self.counting = True

    def on_train_epoch_end(self, *args: Any) -> None:
        self.counting = False


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["ce_dice", "ce"])
def test_training_steps_read_nothing_back_to_the_host(
    compose, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loss: str
) -> None:
    """More steps must not mean more host reads: the loss, the epoch mean and the progress bar
    stay on the device between logging intervals (here: none within the epoch)."""
    counts = []
    for steps in (4, 12):
        counter = HostReadCounter(monkeypatch)
        cfg = _config(
            compose,
            tmp_path / str(steps),
            f"loss={loss}",
            "trainer.max_epochs=1",
            f"trainer.limit_train_batches={steps}",
            "trainer.limit_val_batches=0",
            "trainer.num_sanity_val_steps=0",
            "trainer.log_every_n_steps=1000",
            "trainer.enable_progress_bar=true",
            # the data pipeline reads its random numbers on the host, in its worker process
            "data.loader.num_workers=1",
        )
        _fit(cfg, counter)
        counts.append(counter.counts)
        monkeypatch.undo()
    assert counts[0] == counts[1]


@pytest.mark.slow
def test_a_per_step_progress_bar_would_be_counted(
    compose, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The counter above can fail: a progress bar refreshed every step reads the loss each time
    (so does Lightning for every value logged with ``prog_bar=True``)."""
    counts = []
    for steps in (4, 12):
        counter = HostReadCounter(monkeypatch)
        cfg = _config(
            compose,
            tmp_path / str(steps),
            "trainer.max_epochs=1",
            f"trainer.limit_train_batches={steps}",
            "trainer.limit_val_batches=0",
            "trainer.num_sanity_val_steps=0",
            "trainer.log_every_n_steps=1000",
            "+callbacks.progress._target_=seglab.engine.callbacks.IntervalProgressBar",
            "+callbacks.progress.refresh_rate=1",
            "data.loader.num_workers=1",
        )
        _fit(cfg, counter)
        counts.append(sum(counter.counts.values()))
        monkeypatch.undo()
    assert counts[1] > counts[0]


@pytest.mark.slow
def test_channels_last_puts_weights_and_images_in_nhwc(compose, tmp_path: Path) -> None:
    seen = []

    class Layout(pl.Callback):
        def on_train_batch_start(self, trainer: pl.Trainer, module: Any, *_: Any) -> None:
            forward = module.model.forward

            def recording(images: torch.Tensor) -> torch.Tensor:
                seen.append(images.is_contiguous(memory_format=torch.channels_last))
                return forward(images)

            module.model.forward = recording

    cfg = _config(
        compose,
        tmp_path,
        "trainer.channels_last=true",
        "trainer.fast_dev_run=2",
        "trainer.enable_progress_bar=false",
    )
    task = _fit(cfg, Layout())
    assert seen and all(seen)
    convs = [m.weight for m in task.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)


@pytest.mark.slow
def test_compile_wraps_the_model_in_place_and_checkpoints_keep_plain_names(
    compose, tmp_path: Path
) -> None:
    cfg = _config(
        compose,
        tmp_path,
        # the eager backend runs the compiled graph without generating code: fast to test
        "trainer.compile={backend: eager}",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "trainer.num_sanity_val_steps=0",
        "trainer.enable_progress_bar=false",
    )
    task = _fit(cfg)
    assert task.model._compiled_call_impl is not None
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert not any("_orig_mod" in key for key in checkpoint["state_dict"])
    assert any(key.startswith("model.encoder.") for key in checkpoint["state_dict"])


def test_compile_is_for_training_only(compose, tmp_path: Path) -> None:
    spec = resolve_spec(_config(compose, tmp_path, "trainer.compile=true"))
    assert spec.performance.compile == {}
    task = build_task(spec, build_datamodule(spec))
    apply_performance_options(spec, task, training=False)
    assert task.model._compiled_call_impl is None


def test_matmul_precision_is_applied_and_checked(compose, tmp_path: Path) -> None:
    before = torch.get_float32_matmul_precision()
    spec = resolve_spec(_config(compose, tmp_path, "trainer.float32_matmul_precision=high"))
    task = build_task(spec, build_datamodule(spec))
    try:
        apply_performance_options(spec, task, training=False)
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision(before)
    cfg = _config(compose, tmp_path, "trainer.float32_matmul_precision=fast")
    with pytest.raises(SeglabError, match=r"trainer.float32_matmul_precision=fast .*highest"):
        resolve_spec(cfg)


def test_bad_compile_value_is_refused(compose, tmp_path: Path) -> None:
    cfg = _config(compose, tmp_path, "trainer.compile=max")
    with pytest.raises(SeglabError, match=r"trainer.compile=max must be false, true, or a dict"):
        resolve_spec(cfg)


@pytest.mark.slow
def test_benchmark_measures_every_part_on_a_tiny_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "benchmark.json"
    arguments = ["--steps", "3", "--warmup", "1", "--repeats", "2", "--workers", "0", "1"]
    arguments += ["--data-batches", "2", "--inference-batches", "2"]
    arguments += ["--variant", "trainer.channels_last=true", "--output", str(output)]
    overrides = [o for o in TINY if o != "trainer.enable_model_summary=false"]
    arguments += [*overrides, "trainer.enable_progress_bar=false"]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *arguments])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    assert exit_info.value.code == 0
    results = json.loads(output.read_text())
    train = results["train"]
    assert (train["steps"], train["warmup"]) == (3, 1)
    for side in ("seglab", "plain"):
        runs = train[f"{side}_images_per_s"]
        assert len(runs) == 2
        assert train[side] == {
            "count": 2,
            "mean": pytest.approx(sum(runs) / 2),
            "std": pytest.approx(abs(runs[0] - runs[1]) / 2**0.5),
            "median": pytest.approx(statistics.median(runs)),
            "min": min(runs),
            "max": max(runs),
            "relative_spread": pytest.approx((max(runs) - min(runs)) / statistics.median(runs)),
        }
    assert train["ratio"] == pytest.approx(train["seglab"]["median"] / train["plain"]["median"])
    assert set(results["variants"]) == {"trainer.channels_last=true"}
    assert set(results["data_images_per_s"]) == {"0", "1"}
    values = [*train["seglab_images_per_s"], *train["plain_images_per_s"]]
    values += [*results["variants"].values(), *results["data_images_per_s"].values()]
    assert all(value > 0 for value in [*values, results["inference_images_per_s"]])
    machine = results["machine"]
    assert machine["torch_threads"] >= 1 and machine["cpu_count"] >= 1
    assert set(machine["cpu_flags"]) <= {"avx512_bf16", "amx_bf16", "amx_tile"}
    # the printed table gives each side's spread next to the ratio
    table = {line.split("  ")[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "spread" in table["train, seglab"] and "spread" in table["train, plain loop"]
    assert "seglab" in table["train, seglab / plain (ratio)"].split("spread")[1]
    assert "plain" in table["train, seglab / plain (ratio)"].split("spread")[1]


@pytest.mark.slow
def test_both_sides_of_the_training_benchmark_validate_and_checkpoint(
    compose, tmp_path: Path
) -> None:
    """A timed epoch is what a run's epoch is: training, a validation of the whole val split,
    best.ckpt and last.ckpt, and (seglab's side) the TensorBoard images."""
    benchmark = runpy.run_path(str(SCRIPT))
    # two val batches, so that a validation cut short shows
    cfg = _config(
        compose, tmp_path, "trainer.enable_progress_bar=false", "data.loader.eval_batch_size=4"
    )
    benchmark["seglab_training"](cfg, 3, 1)
    benchmark["plain_training"](cfg, 3, 1)
    (seglab_run,) = tmp_path.glob("seglab-*")
    (plain_run,) = tmp_path.glob("plain-*")
    assert {p.name for p in (seglab_run / "checkpoints").iterdir()} == {"best.ckpt", "last.ckpt"}
    assert {p.name for p in plain_run.iterdir()} == {"best.ckpt", "last.ckpt"}
    events = load_events(seglab_run)
    assert set(events.Tags()["images"]) >= {"val/predictions", "val/confusion_matrix"}
    assert "val/mIoU" in events.Tags()["scalars"]
    # the plain loop's confusion matrix counts every labelled pixel of the val split
    datamodule = build_datamodule(resolve_spec(cfg))
    setup_data(datamodule, "fit")
    labelled = sum(
        int((masks != datamodule.ignore_index).sum()) for _, masks, _ in datamodule.val_dataloader()
    )
    checkpoint = torch.load(plain_run / "best.ckpt", weights_only=True)
    assert int(checkpoint["confusion_matrix"].sum()) == labelled
    assert set(checkpoint) >= {"model", "optimizer", "scheduler"}
