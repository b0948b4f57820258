"""What ``experiment=camvid_cpu`` relies on, in runs of seconds on the synthetic data: bf16
autocast in channels-last layout (``trainer=cpu``), validation on a wall-clock interval and
once more when ``trainer.max_time`` is up, and a decay that ends with the time budget."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from tiny import TINY
from torch import nn

from seglab.cli.train import main as train_main
from seglab.engine.schedulers import max_time_seconds
from seglab.runs.directories import load_events, read_scalars
from seglab.runs.environment import (
    cpu_description,
    cpu_flags,
    cpu_precision,
    machine_description,
)

#: The wall-clock settings of the time-budget run, seconds apart enough to tell apart.
INTERVAL, BUDGET = 2.0, 7.0
LR = 3e-3


def _train(args: list[str], tmp_path: Path, cli) -> Path:
    code, _, err = cli(
        train_main,
        *args,
        f"paths.output_root={tmp_path}",
        cwd=tmp_path,
    )
    assert code == 0, err[-3000:]
    (run_dir,) = (tmp_path / "train").iterdir()
    return run_dir


def test_camvid_cpu_uses_what_these_runs_test(compose) -> None:
    """The recipe's settings are the ones the runs below exercise on synthetic data."""
    cfg = compose("train", "experiment=camvid_cpu")
    trainer = cfg.trainer
    assert (trainer.accelerator, trainer.precision, trainer.channels_last) == (
        "cpu",
        cpu_precision(),
        True,
    )
    assert trainer.check_val_every_n_epoch is None
    assert max_time_seconds(trainer.val_check_interval) < max_time_seconds(trainer.max_time)
    assert cfg.scheduler._target_ == "seglab.engine.schedulers.poly"
    assert OmegaConf.to_container(cfg.scheduler, resolve=True)["max_time"] == trainer.max_time


@pytest.mark.parametrize(
    ("cpuinfo", "precision"),
    [
        ("flags\t\t: fpu sse avx2 avx512f avx512bw avx512_vnni\n", "32-true"),
        # AVX-512 BF16 without AMX: bf16 trained at 0.81x float32's speed
        ("flags\t\t: fpu avx2 avx512f avx512_bf16\n", "32-true"),
        ("flags\t\t: fpu avx2 avx512_bf16 amx_tile amx_bf16\n", "bf16-mixed"),
        ("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n", "32-true"),
        (None, "32-true"),
    ],
)
def test_trainer_cpu_computes_in_bf16_only_where_the_cpu_has_amx(
    cpuinfo: str | None, precision: str, tmp_path: Path
) -> None:
    path = tmp_path / "cpuinfo"
    if cpuinfo is not None:
        path.write_text(cpuinfo)
    assert cpu_precision(cpu_flags(path)) == precision


@pytest.mark.slow
def test_trainer_cpu_trains_in_bf16_with_channels_last_convolutions(tmp_path: Path, cli) -> None:
    """Every training convolution sees NHWC weights and inputs and computes in bfloat16."""
    seen: list[tuple[bool, bool, torch.dtype, torch.dtype]] = []

    def record(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d) and module.training and module.kernel_size != (1, 1):
            seen.append(
                (
                    module.weight.is_contiguous(memory_format=torch.channels_last),
                    inputs[0].is_contiguous(memory_format=torch.channels_last),
                    module.weight.dtype,
                    output.dtype,
                )
            )

    handle = nn.modules.module.register_module_forward_hook(record)
    try:
        run_dir = _train(
            [*TINY, "trainer=cpu", "trainer.precision=bf16-mixed", "test_after_fit=false"],
            tmp_path,
            cli,
        )
    finally:
        handle.remove()
    assert seen, "no training convolution ran"
    assert all(weights_nhwc for weights_nhwc, *_ in seen), "weights not channels-last"
    assert all(inputs_nhwc for _, inputs_nhwc, *_ in seen), "inputs not channels-last"
    # mixed precision: float32 master weights, bfloat16 arithmetic
    assert {(weight, out) for *_, weight, out in seen} == {(torch.float32, torch.bfloat16)}
    losses = [value for _, value in read_scalars(run_dir)["train/loss"]]
    assert len(losses) == 8 and all(math.isfinite(loss) for loss in losses)
    assert sum(losses[-2:]) < sum(losses[:2]), f"bf16 training did not lower the loss: {losses}"


@pytest.mark.slow
def test_time_budget_validates_on_the_clock_and_at_its_end_and_decays_the_rate_over_it(
    tmp_path: Path, cli
) -> None:
    """A run stopped by trainer.max_time, validating on a wall-clock interval and decaying its
    learning rate over the budget, as experiment=camvid_cpu does over ten minutes."""
    args = [
        "data.image_size=32",
        # epochs of 8 steps, far shorter than the interval
        "data.num_train=64",
        "data.num_val=16",
        "data.loader.batch_size=8",
        "model.encoder.widths=[8,16,32]",
        f"optimizer.lr={LR}",
        "trainer.max_epochs=1000",
        f"trainer.max_time=00:00:00:{BUDGET:02g}",
        "trainer.check_val_every_n_epoch=null",
        f"+trainer.val_check_interval=00:00:00:{INTERVAL:02g}",
        "scheduler.max_time=${trainer.max_time}",
        "trainer.num_sanity_val_steps=0",
        "trainer.log_every_n_steps=1",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "test_after_fit=false",
        # validation kept short, so that it fits between the checks
        "callbacks.prediction_grid=null",
        "callbacks.confusion_matrix_image=null",
    ]
    events = load_events(_train(args, tmp_path, cli))
    train, val = events.Scalars("train/loss"), events.Scalars("val/mIoU")
    start, end = train[0].wall_time, train[-1].wall_time
    assert end - start == pytest.approx(BUDGET, abs=1.5), "the run did not stop at its budget"
    assert len(val) >= 2, f"validation ran {len(val)} times in {BUDGET} s"
    # on the interval: each validation but the last comes INTERVAL seconds after the previous
    # one ended, never per epoch or per batch (the first is counted from the first step's end,
    # a step after the clock started)
    times = [start] + [event.wall_time for event in val[:-1]]
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    assert gaps[0] >= INTERVAL - 0.5 and all(gap >= INTERVAL for gap in gaps[1:]), gaps
    # and once more when the time is up, after the last training step
    assert val[-1].step == train[-1].step, "no validation when the time was up"

    rates = [event.value for event in events.Scalars("train/lr")]
    assert rates[0] == pytest.approx(LR)
    assert all(later <= earlier for earlier, later in zip(rates, rates[1:], strict=False))
    # poly decay to 0 over the budget; the last step starts a step before the budget's end
    # (a decay by steps alone would still be at 0.99 of its start after these few hundred)
    assert rates[-1] < 0.2 * LR, f"the rate ended at {rates[-1] / LR:.2f} of its start"


def test_a_measurement_names_the_cpu_and_its_instruction_sets(tmp_path: Path) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text("model name\t: Some Xeon\nflags\t\t: fpu avx2 avx512f amx_bf16\n")
    assert cpu_description(path) == "Some Xeon (amx_bf16, avx512f, avx2)"
    # where the system lists no flags, none are claimed missing
    path.write_text("model name\t: Some Xeon\n")
    assert cpu_description(path) == "Some Xeon"


def test_a_benchmark_records_the_flags_it_asks_about_in_its_order(tmp_path: Path) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text("model name\t: Some Xeon\nflags\t\t: fpu avx2 amx_tile avx512f\n")
    machine = machine_description(("amx_int8", "avx512f", "amx_tile"), cpuinfo=path)
    assert machine["cpu"] == "Some Xeon" and machine["cpu_flags"] == ["avx512f", "amx_tile"]
    assert machine["torch_threads"] == torch.get_num_threads()
    assert machine["torch"] == torch.__version__
    # asked about nothing, it claims nothing
    assert machine_description(cpuinfo=path)["cpu_flags"] == []
