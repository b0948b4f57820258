"""Write docs/models.md: size, compute and CPU speed of every encoder x decoder in conf/.

    python scripts/benchmarks/model_table.py           # all combinations, writes docs/models.md
    python scripts/benchmarks/model_table.py --size 64 --repeats 1 --encoders conv \\
        --output /tmp/m.md

Every model is composed through Hydra exactly as ``seglab-train model/encoder=.. model/decoder=..``
builds it, with no attention. FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode``
(two per multiply-add); milliseconds are the median of ``--repeats`` batch-1 forward passes in
inference mode after one warm-up pass, with the threads torch uses by default.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from seglab.config.location import config_dir
from seglab.config.spec import resolve_spec
from seglab.errors import SeglabError
from seglab.runs.environment import machine_description
from seglab.runs.spread import spread
from seglab.workflows.build import build_model
from seglab.workflows.mounting import compose_config

DEFAULT_OUTPUT = Path(__file__).resolve().parents[2] / "docs" / "models.md"


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (config_dir() / "model" / group).glob("*.yaml"))


def compose_model(encoder: str, decoder: str, extra: list[str]) -> torch.nn.Module:
    overrides = [f"model/encoder={encoder}", f"model/decoder={decoder}", "model/attention=none"]
    return build_model(resolve_spec(compose_config("train", [*overrides, *extra]))).eval()


def measure(model: torch.nn.Module, size: int, repeats: int) -> dict[str, float]:
    x = torch.randn(1, 3, size, size)
    with torch.inference_mode():
        with FlopCounterMode(display=False) as counter:
            model(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return {
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "gflops": counter.get_total_flops() / 1e9,
        "ms": 1000 * spread(times).median,
    }


_ATTENTION_PEAK = """
import json, sys, time
import torch
from seglab.models import PixelSelfAttention

def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024

channels, size, reduction = map(int, sys.argv[1:])
torch.manual_seed(0)
block = PixelSelfAttention(channels, reduction=reduction).eval()
x = torch.randn(1, channels, size, size)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets the peak (VmHWM) to the current resident size
before = status("VmRSS:")
start = time.perf_counter()
with torch.inference_mode():
    block(x)
seconds = time.perf_counter() - start
print(json.dumps({"peak_increase_mib": status("VmHWM:") - before, "seconds": seconds}))
"""


def attention_memory(channels: int, size: int, reduction: int) -> dict[str, float]:
    """Peak resident memory the block adds, in a fresh interpreter that imports only it."""
    args = [str(v) for v in (channels, size, reduction)]
    output = subprocess.run(
        [sys.executable, "-c", _ATTENTION_PEAK, *args], capture_output=True, text=True, check=True
    ).stdout
    result = json.loads(output)
    queries = size * size
    keys = (-(-size // reduction)) ** 2
    result["full_matrix_mib"] = queries * keys * 4 / 2**20
    result["input_mib"] = channels * queries * 4 / 2**20
    return result


def render(rows: list[dict], attention: dict | None, args: argparse.Namespace) -> str:
    command = " ".join(["python", "scripts/benchmarks/model_table.py", *sys.argv[1:]])
    machine = machine_description()
    lines = [
        "# Models",
        "",
        f"Made by `{command}` on {machine['cpu']}, {machine['torch_threads']} torch threads, "
        f"torch {machine['torch']}.",
        "",
        "Every encoder x decoder in `conf/model/` (no attention, default options, so `timm` is "
        "efficientnet_b0; 4 classes), "
        f"at a {args.size}x{args.size} input: parameters, GFLOPs (FLOPs counted by "
        "`torch.utils.flop_counter`, two per multiply-add) and CPU inference milliseconds per "
        f"image (batch 1, median of {args.repeats} after a warm-up).",
        "",
        "| encoder | decoder | params (M) | GFLOPs | CPU ms/image |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for row in rows:
        if "error" in row:
            lines.append(
                f"| {row['encoder']} | {row['decoder']} | cannot be built: "
                f"{row['error'].split(';')[0].removeprefix('model: Segmenter: ')} | | |"
            )
            continue
        lines.append(
            f"| {row['encoder']} | {row['decoder']} | {row['params_m']:.2f} | "
            f"{row['gflops']:.2f} | {row['ms']:.0f} |"
        )
    if attention is not None:
        lines += [
            "",
            "## Self-attention memory",
            "",
            f"`PixelSelfAttention(channels={args.attention_channels}, "
            f"reduction={args.attention_reduction})` on a 1x{args.attention_channels}x"
            f"{args.attention_size}x{args.attention_size} map (attention at full resolution, the "
            "worst case of `model.attention_at=decoder`), one forward in inference mode in a "
            "fresh interpreter; the increase is the peak resident memory (`VmHWM`, reset just "
            "before) over the resident memory before the forward.",
            "",
            f"- peak memory increase: {attention['peak_increase_mib']:.0f} MiB "
            f"(the input map itself is {attention['input_mib']:.0f} MiB)",
            f"- a materialised attention matrix would take {attention['full_matrix_mib']:.0f} MiB:"
            " `scaled_dot_product_attention` never builds it, so memory grows with the map, not "
            "with its square",
            f"- time: {attention['seconds']:.1f} s",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--encoders", nargs="*", help="default: every conf/model/encoder option")
    parser.add_argument("--decoders", nargs="*", help="default: every conf/model/decoder option")
    parser.add_argument("--attention-size", type=int, default=512)
    parser.add_argument("--attention-channels", type=int, default=16)
    parser.add_argument("--attention-reduction", type=int, default=4)
    parser.add_argument("--skip-attention", action="store_true")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("overrides", nargs="*", help="extra config overrides, key=value")
    args = parser.parse_args()
    rows = []
    for encoder in args.encoders or options("encoder"):
        for decoder in args.decoders or options("decoder"):
            try:
                model = compose_model(encoder, decoder, args.overrides)
            except SeglabError as error:
                # combinations that cannot exist, such as unpooling without pooling indices
                rows.append({"encoder": encoder, "decoder": decoder, "error": str(error)})
                continue
            row = {
                "encoder": encoder,
                "decoder": decoder,
                **measure(model, args.size, args.repeats),
            }
            print(row, flush=True)
            rows.append(row)
    attention = None
    if not args.skip_attention:
        attention = attention_memory(
            args.attention_channels, args.attention_size, args.attention_reduction
        )
        print(attention, flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(rows, attention, args))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
