"""Peak memory of ``seglab-predict`` on one large image, measured in a fresh process.

    python scripts/benchmarks/predict_memory.py [--height 2000 --width 3000 --tile 256]
        [--ckpt <file>]

Writes a random image, runs ``python -m seglab.cli.predict`` on it in a child process and reports
the child's peak resident memory (``ru_maxrss``). Without ``--ckpt`` the checkpoint is the
default model (``conf/train.yaml``) with untrained weights, which costs the same memory as a
trained one. Exits 1 when the peak exceeds ``--limit-gib`` or the mask has the wrong size.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from PIL import Image

from seglab.config.spec import resolve_spec
from seglab.engine.checkpoints import CHECKPOINT_KEY
from seglab.workflows.build import build_model
from seglab.workflows.mounting import compose_config


def write_checkpoint(path: Path, overrides: list[str]) -> None:
    """A seglab checkpoint of the train config with ``overrides``, with initial weights."""
    cfg = compose_config("train", [f"paths.output_dir={path.parent}", *overrides])
    model = build_model(resolve_spec(cfg))
    config = OmegaConf.to_container(cfg, resolve=True)
    state = {f"model.{key}": value for key, value in model.state_dict().items()}
    checkpoint = {CHECKPOINT_KEY: {"config": config, "classes": list(cfg.data.classes)}}
    torch.save({**checkpoint, "state_dict": state}, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=2000)
    parser.add_argument("--width", type=int, default=3000)
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--ckpt", type=Path, help="checkpoint; default: untrained default model")
    parser.add_argument("--model", nargs="*", default=[], help="train overrides without --ckpt")
    parser.add_argument("--limit-gib", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        ckpt = args.ckpt or work / "model.ckpt"
        if args.ckpt is None:
            write_checkpoint(ckpt, args.model)
        pixels = np.random.default_rng(0).integers(0, 256, (args.height, args.width, 3))
        Image.fromarray(pixels.astype(np.uint8)).save(work / "large.png")
        del pixels
        command = [
            sys.executable,
            "-m",
            "seglab.cli.predict",
            f"ckpt_path={ckpt}",
            f"input={work / 'large.png'}",
            f"output={work / 'out'}",
            f"inference.tile={args.tile}",
            "device=cpu",
        ]
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, env=os.environ)
        seconds = time.perf_counter() - start
        if result.returncode != 0:
            print(result.stderr[-3000:], file=sys.stderr)
            return 1
        # the largest resident set of any child, which here is the one seglab-predict process
        peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        with Image.open(work / "out" / "large.png") as mask:
            size, mode = mask.size, mask.mode
    print(f"command: {' '.join(command[1:4])} input=<{args.height}x{args.width} png> ...")
    print(f"mask: {size[1]}x{size[0]} mode {mode}; {seconds:.1f} s; peak RSS {peak_gib:.2f} GiB")
    ok = size == (args.width, args.height) and mode == "P" and peak_gib < args.limit_gib
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
