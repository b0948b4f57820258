"""Training speed of ``experiment=camvid_cpu``'s model in float32 and in bf16 autocast, on this
CPU and on the instruction sets of older CPUs that oneDNN can be limited to.

    python scripts/benchmarks/precision_benchmark.py [--seconds 20] [--warmup 2] [--repeats 1]
        [--isa DEFAULT AVX512_CORE_BF16 AVX512_CORE_VNNI AVX2] [--output <file>.json]

Why: ``trainer=cpu`` trains in bf16 autocast only where the CPU computes bfloat16 natively
(``seglab.runs.environment.cpu_precision``). That rule is measured here rather than assumed: each
(instruction set, precision) pair runs in a fresh process with ``ONEDNN_MAX_CPU_ISA`` set (and
``ATEN_CPU_CAPABILITY=avx2`` for AVX2), so that the convolutions use only the instructions a
CPU of that kind has: ``DEFAULT`` is this CPU (with AMX where it has it), ``AVX512_CORE_BF16``
a CPU with AVX-512 BF16 but no AMX, ``AVX512_CORE_VNNI`` an AVX-512 CPU without bf16
instructions, ``AVX2`` one without AVX-512. A step is the recipe's: 8 random 128x176 crops,
forward, cross-entropy plus Dice, backward and AdamW, channels-last, on the recipe's ResNet-18
+ FPN. Images/s count the steps after ``--warmup`` until ``--seconds`` have passed (at least
one: emulated bf16 can take a minute a step); the pairs alternate ``--repeats`` times and the
median is reported with the bf16 / float32 ratio per instruction set.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from seglab.runs.environment import cpu_description
from seglab.runs.spread import spread

PRECISIONS = ("32-true", "bf16-mixed")


def measure(precision: str, seconds: float, warmup: int) -> float:
    """Images/s of training steps in this process (the child side)."""
    import torch
    from hydra.utils import instantiate

    from seglab.workflows.mounting import compose_config

    cfg = compose_config("train", ["experiment=camvid_cpu"])
    torch.manual_seed(0)
    model = instantiate(cfg.model).to(memory_format=torch.channels_last).train()
    loss_fn = instantiate(cfg.loss)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.optimizer.lr)
    height, width = cfg.data.augment.crop_size
    batch = cfg.data.loader.batch_size
    images = torch.randn(batch, 3, height, width).contiguous(memory_format=torch.channels_last)
    masks = torch.randint(0, cfg.data.num_classes, (batch, height, width))
    autocast = precision == "bf16-mixed"
    start, step = 0.0, 0
    while step <= warmup or time.perf_counter() - start < seconds:
        if step == warmup:
            start = time.perf_counter()
        step += 1
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            logits = model(images)
        loss = loss_fn(logits.float(), masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return (step - warmup) * batch / (time.perf_counter() - start)


def run_child(isa: str, precision: str, args: argparse.Namespace) -> float:
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": isa}
    if isa == "AVX2":
        # ATen's own vectorised kernels (everything but oneDNN's) on AVX2 too
        env["ATEN_CPU_CAPABILITY"] = "avx2"
    command = [sys.executable, __file__, "--child", precision]
    command += ["--seconds", str(args.seconds), "--warmup", str(args.warmup)]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{isa} {precision} failed:\n{result.stderr[-2000:]}")
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--isa", nargs="+", default=["DEFAULT", "AVX512_CORE_BF16", "AVX512_CORE_VNNI", "AVX2"]
    )
    parser.add_argument("--output", type=Path)
    parser.add_argument("--child", choices=PRECISIONS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(measure(args.child, args.seconds, args.warmup))
        return
    speeds: dict[tuple[str, str], list[float]] = {}
    for repeat in range(args.repeats):
        for isa in args.isa:
            # alternate the order so that neither precision always runs first
            order = PRECISIONS if repeat % 2 == 0 else PRECISIONS[::-1]
            for precision in order:
                speed = run_child(isa, precision, args)
                speeds.setdefault((isa, precision), []).append(speed)
                print(f"{isa:18} {precision:10} {speed:6.2f} images/s", flush=True)
    print(f"\n{cpu_description()}, {os.cpu_count()} CPUs; medians of {args.repeats} repeats")
    print("| oneDNN instruction set | float32 images/s | bf16 autocast images/s | bf16 / float32 |")
    print("| --- | --- | --- | --- |")
    rows = []
    for isa in args.isa:
        fp32 = spread(speeds[(isa, "32-true")]).median
        bf16 = spread(speeds[(isa, "bf16-mixed")]).median
        rows.append({"isa": isa, "float32": fp32, "bf16": bf16, "ratio": bf16 / fp32})
        print(f"| {isa} | {fp32:.2f} | {bf16:.2f} | {bf16 / fp32:.2f} |")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps({"cpu": cpu_description(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
