"""FP32 PyTorch, FP32 ONNX and INT8 ONNX of one checkpoint: val mIoU, CPU latency, size.

    python scripts/benchmarks/benchmark_compression.py --ckpt <run>/checkpoints/best.ckpt
        [--calibration-images 64 --method minmax --repeats 20 --size 360 480]
        [--prune-amount 0.25 --fine-tune-time 00:00:03:00]
        [--output outputs/compression.json] [overrides for seglab-eval, e.g. data.root=...]

The two ONNX files are written by ``seglab-export`` (``quantize=int8`` for the second) and all
three models are scored by ``seglab-eval`` on the val split, so the figures are those of the
commands a user runs. Latency is the median wall time of ``--repeats`` forward passes of random
``--size`` images at batch 1 and 8, after two warm-up passes, on the CPU with every core (torch
and ONNX Runtime threads at ``os.cpu_count()``); the ratio divides FP32 ONNX's median by each
model's, measured in the same process. With ``--prune-amount`` above 0 (0.25 by default),
``seglab-prune`` removes that share of the channels and fine-tunes for ``--fine-tune-time``
(days:hours:minutes:seconds; or its default 3 epochs, if sooner), which adds the rows of the
pruned network and of its INT8 ONNX file. INT8 speed depends on the CPU's integer dot-product
instructions (AVX-512 VNNI, AVX-VNNI, AMX), which the report lists from /proc/cpuinfo.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import seglab
from seglab.engine.checkpoints import CHECKPOINT_KEY, load_checkpoint
from seglab.inference.onnx_model import OnnxSegmenter
from seglab.models.cost import forward_flops
from seglab.runs.environment import machine_description
from seglab.runs.spread import spread

#: The /proc/cpuinfo flags that decide how fast INT8 convolutions run.
INT8_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8")


def run_command(*args: str) -> str:
    """A seglab command in a fresh interpreter; its stdout, or exit with its stderr."""
    result = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(args[:1])} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def val_miou(model_arg: str, root: Path, overrides: list[str]) -> float:
    """seglab-eval's val mIoU of ``model_arg`` (``ckpt_path=`` or ``model_path=``)."""
    output = root / f"eval-{len(list(root.glob('eval-*')))}"
    run_command(
        "seglab.cli.eval", model_arg, "split=val", f"paths.output_root={output}", *overrides
    )
    (metrics,) = output.glob("eval/*/metrics.json")
    return json.loads(metrics.read_text())["mIoU"]


def median_seconds(
    model: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor, repeats: int
) -> float:
    times = []
    with torch.no_grad():
        for index in range(repeats + 2):
            start = time.perf_counter()
            model(batch)
            if index >= 2:  # two warm-up passes
                times.append(time.perf_counter() - start)
    return spread(times).median


def prune(args: argparse.Namespace, work: Path, overrides: list[str]) -> Path:
    """seglab-prune's checkpoint of ``args.ckpt``: its best after ``--fine-tune-time`` of
    fine-tuning, or the network as pruned when the fine-tune saved none.

    A checkpoint whose schedule decays over a time budget (``scheduler.max_time``, as in
    ``experiment=camvid_cpu``) is fine-tuned for the whole ``--fine-tune-time``, its rate
    decaying over that time, rather than for prune.yaml's few epochs."""
    config = load_checkpoint(args.ckpt)[CHECKPOINT_KEY]["config"]
    timed = (config.get("scheduler") or {}).get("max_time") is not None
    budget = ["trainer.max_epochs=1000", f"scheduler.max_time={args.fine_tune_time}"]
    run_command(
        "seglab.cli.prune",
        f"ckpt_path={args.ckpt}",
        f"amount={args.prune_amount}",
        f"trainer.max_time={args.fine_tune_time}",
        *(budget if timed else []),
        f"paths.output_root={work / 'outputs'}",
        *overrides,
    )
    (run_dir,) = (work / "outputs" / "prune").iterdir()
    best = run_dir / "checkpoints" / "best.ckpt"
    return best if best.is_file() else run_dir / "pruned.ckpt"


def weights_bytes(model: torch.nn.Module) -> int:
    """Size of the network's state dict as ``torch.save`` writes it (no optimizer state)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", type=Path, required=True)
    parser.add_argument("--calibration-images", type=int, default=64)
    parser.add_argument("--method", default="minmax")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--size", type=int, nargs=2, default=[360, 480])
    parser.add_argument("--prune-amount", type=float, default=0.25)
    parser.add_argument("--fine-tune-time", default="00:00:03:00")
    parser.add_argument("--output", type=Path, default=Path("outputs/compression.json"))
    args, overrides = parser.parse_known_args()
    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    work = Path(tempfile.mkdtemp(prefix="seglab-compression-"))
    # each row: the seglab-eval argument naming what it scores, and the file of its size
    checkpoints = {"FP32 PyTorch": args.ckpt}
    files = {"FP32 ONNX": work / "model.onnx", "INT8 ONNX": work / "model.int8.onnx"}
    # each ONNX row: the row of the checkpoint it is exported from, and whether INT8
    exports = {"FP32 ONNX": ("FP32 PyTorch", False), "INT8 ONNX": ("FP32 PyTorch", True)}
    if args.prune_amount:
        pruned_name = f"pruned {100 * args.prune_amount:g} % + fine-tune"
        checkpoints[pruned_name] = prune(args, work, overrides)
        files["pruned + INT8"] = work / "pruned.int8.onnx"
        exports["pruned + INT8"] = (pruned_name, True)
    quantize = [
        "quantize=int8",
        f"calibration.num_images={args.calibration_images}",
        f"calibration.method={args.method}",
    ]
    for name, (source, int8) in exports.items():
        run_command(
            "seglab.cli.export",
            f"ckpt_path={checkpoints[source]}",
            f"output={files[name]}",
            f"paths.output_root={work / 'outputs'}",
            *(quantize if int8 else []),
            *overrides,
        )
    networks = {name: seglab.load(path).model for name, path in checkpoints.items()}
    models: dict[str, Callable[[torch.Tensor], torch.Tensor]] = dict(networks)
    models.update({name: OnnxSegmenter(path) for name, path in files.items()})
    height, width = args.size
    channels = networks["FP32 PyTorch"].in_channels or 3
    rows: dict[str, dict[str, Any]] = {}
    for name in models:
        in_torch = name in checkpoints
        network = networks[name if in_torch else exports[name][0]]
        model_arg = f"ckpt_path={checkpoints[name]}" if in_torch else f"model_path={files[name]}"
        rows[name] = {
            "val_mIoU": val_miou(model_arg, work, overrides),
            "params": sum(p.numel() for p in network.parameters()),
            # of the float network the row runs or was quantized from, at --size
            "gflops": forward_flops(network, (1, channels, height, width)) / 1e9,
            "file_bytes": weights_bytes(network) if in_torch else files[name].stat().st_size,
        }
    for batch_size in (1, 8):
        batch = torch.randn(
            batch_size, channels, height, width, generator=torch.Generator().manual_seed(0)
        )
        for name, model in models.items():
            seconds = median_seconds(model, batch, args.repeats)
            rows[name][f"ms_per_image_batch{batch_size}"] = 1000 * seconds / batch_size
        reference = rows["FP32 ONNX"][f"ms_per_image_batch{batch_size}"]
        for row in rows.values():
            row[f"speedup_vs_fp32_onnx_batch{batch_size}"] = (
                reference / row[f"ms_per_image_batch{batch_size}"]
            )
    report = {
        "checkpoint": str(args.ckpt.resolve()),
        "image_size": [height, width],
        "repeats": args.repeats,
        "machine": machine_description(INT8_FLAGS),
        "calibration": {"num_images": args.calibration_images, "method": args.method},
        "versions": {"torch": torch.__version__, "onnxruntime": _onnxruntime_version()},
        "models": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(_table(report))
    print(f"written to {args.output}")


def _onnxruntime_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def _table(report: dict[str, Any]) -> str:
    """The report as a Markdown table, as docs/compression.md quotes it."""
    machine = report["machine"]
    lines = [
        f"CPU: {machine['cpu']} ({machine['torch_threads']} threads); "
        f"INT8 flags: {', '.join(machine['cpu_flags']) or 'none'}",
        "",
        "| model | val mIoU | ms/image b1 | x FP32 ONNX b1 | ms/image b8 | x FP32 ONNX b8 "
        "| params | GFLOPs | file |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in report["models"].items():
        lines.append(
            f"| {name} | {row['val_mIoU']:.4f} | {row['ms_per_image_batch1']:.2f} "
            f"| {row['speedup_vs_fp32_onnx_batch1']:.2f} | {row['ms_per_image_batch8']:.2f} "
            f"| {row['speedup_vs_fp32_onnx_batch8']:.2f} | {row['params']:,} "
            f"| {row['gflops']:.2f} | {row['file_bytes'] / 1e3:.0f} kB |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
