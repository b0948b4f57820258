"""Score a CamVid recipe on the val split and on a drive it never saw, from one training run.

    python scripts/studies/holdout_check.py NAME [--seeds 42 ...] [--holdout 0006R0]
        [--eval OVERRIDE ...] [--results outputs/holdout_check/results.jsonl] [override ...]
    python scripts/studies/holdout_check.py NAME --reuse <run> [--eval OVERRIDE ...]
    python scripts/studies/holdout_check.py --table [--results ...] [--per-class NAME]

CamVid's val split is 101 frames of drive 0016E5, whose neighbouring frames are in train, so
val mIoU rewards remembering that street. Each seed here trains
``seglab-train experiment=camvid_cpu data.splits.holdout=<drive> seed=<seed> <override ...>`` in a
fresh process (the drive's train frames are left out of training), then scores the run's final
weights (``last.ckpt``, the end of the time budget: no checkpoint is picked by a score) twice
with ``seglab-eval``: on the held-out drive, and on the val split (``data.splits.holdout=null``).
``--eval`` overrides go to both scores only (test-time augmentation, evaluation scale), and
``--reuse`` scores an already trained run under them, so an evaluation-time change costs no
training. Each result is appended to ``--results`` as a JSON line; ``--table`` prints the
Markdown table of every recipe (mean and spread over its seeds, the gap between the two
scores, images/s and the commands) and, with ``--per-class``, that recipe's IoU per class.

The budget is wall-clock time: run on a quiet machine, one run at a time.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

from seglab.runs.directories import load_events, read_scalars, wall_time
from seglab.runs.environment import cpu_description
from seglab.runs.spread import spread

EXPERIMENT = "experiment=camvid_cpu"
DEFAULT_RESULTS = Path("outputs/holdout_check/results.jsonl")


def run(args: list[str]) -> None:
    """Run a seglab command in a fresh process; stop with its last error line if it fails."""
    print("+", shlex.join(args), flush=True)
    result = subprocess.run(args, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        sys.exit(f"{shlex.join(args[:4])} ... failed: {lines[-1] if lines else result.returncode}")


def train(overrides: list[str], output_root: Path) -> Path:
    """Train one seed below ``output_root`` (which must be new) and return its run directory."""
    if output_root.exists():
        sys.exit(f"{output_root} exists: pick another --runs folder or recipe name")
    run([sys.executable, "-m", "seglab.cli.train", *overrides, f"paths.output_root={output_root}"])
    (run_dir,) = sorted((output_root / "train").glob("*"))
    return run_dir


def score(run_dir: Path, overrides: list[str], output_root: Path) -> dict:
    """``seglab-eval`` of the run's final weights on split=val under ``overrides``."""
    before = set((output_root / "eval").glob("*")) if (output_root / "eval").is_dir() else set()
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    run(
        [
            sys.executable,
            "-m",
            "seglab.cli.eval",
            f"ckpt_path={ckpt}",
            "split=val",
            *overrides,
            f"paths.output_root={output_root}",
        ]
    )
    (eval_dir,) = set((output_root / "eval").glob("*")) - before
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    return {
        "mIoU": metrics["mIoU"],
        "IoU": {name: values["IoU"] for name, values in metrics["per_class"].items()},
    }


def train_command(run_dir: Path) -> str:
    """The seglab-train command that made the run, from its own record of its overrides."""
    overrides = OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")
    shown = [o for o in overrides if not str(o).startswith("paths.output_root=")]
    return shlex.join(["seglab-train", *map(str, shown)])


def throughput(run_dir: Path, batch: int) -> dict:
    """Steps the run made and trained images per second of its logged time (validation in)."""
    events = load_events(run_dir)
    steps = max(step for step, _ in read_scalars(events)["train/loss"])
    seconds = wall_time(events) or float("nan")
    return {"steps": steps, "images_per_s": steps * batch / seconds}


def check(args: argparse.Namespace) -> None:
    """Train (or reuse) and score every seed of one recipe; append the results."""
    train_overrides = [EXPERIMENT, f"data.splits.holdout={args.holdout}", *args.overrides]
    runs = args.runs or args.results.parent / "runs"
    if args.reuse:
        trained = [args.reuse]
    else:
        trained = [
            train([*train_overrides, f"seed={seed}"], runs / args.name / f"seed{seed}")
            for seed in args.seeds
        ]
    for run_dir in trained:
        scores = runs / args.name / "eval"
        heldout = score(run_dir, args.eval, scores)
        val = score(run_dir, [*args.eval, "data.splits.holdout=null"], scores)
        # what the run trained with, from its own config (a reused run need not match --holdout)
        config = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
        result = {
            "name": args.name,
            "seed": config.seed,
            "holdout": OmegaConf.to_container(config.data).get("splits", {}).get("holdout"),
            "train": train_command(run_dir),
            "eval": args.eval,
            "run": str(run_dir),
            "val": val,
            "heldout": heldout,
            **throughput(run_dir, config.data.loader.batch_size),
            "cpu": cpu_description(),
            "date": datetime.date.today().isoformat(),
        }
        args.results.parent.mkdir(parents=True, exist_ok=True)
        with args.results.open("a") as file:
            file.write(json.dumps(result) + "\n")
        print(
            f"{args.name} seed {result['seed']}: val {val['mIoU']:.3f}, "
            f"held-out {heldout['mIoU']:.3f}, {result['images_per_s']:.1f} images/s",
            flush=True,
        )


def _mean_and_std(values: list[float]) -> str:
    """A table cell: the mean over the seeds, with their standard deviation if several."""
    summary = spread(values)
    if summary.std is None:
        return f"{summary.mean:.3f}"
    return f"{summary.mean:.3f} ± {summary.std:.3f}"


def _seeded_command(rows: list[dict]) -> str:
    """The command of a recipe's runs: with ``seed=42,1,2`` where its seeds differ (Hydra's
    multirun list, ``seglab-train -m`` runs them all)."""
    seeds = list(dict.fromkeys(str(row["seed"]) for row in rows))
    command = rows[0]["train"]
    if len(seeds) < 2:
        return command
    command = command.replace("seglab-train ", "seglab-train -m ", 1)
    return re.sub(rf"(?<![\w.])seed={seeds[0]}\b", f"seed={','.join(seeds)}", command)


def table(results: list[dict], per_class: str | None) -> str:
    """Markdown: one row per recipe name (seeds pooled) and, optionally, one recipe's classes."""
    names = list(dict.fromkeys(result["name"] for result in results))
    lines = [
        "| recipe | seeds | val mIoU | held-out mIoU | gap | steps | images/s | commands |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in names:
        rows = [result for result in results if result["name"] == name]
        val = [row["val"]["mIoU"] for row in rows]
        heldout = [row["heldout"]["mIoU"] for row in rows]
        gaps = [v - h for v, h in zip(val, heldout, strict=True)]
        steps = spread(row["steps"] for row in rows).mean
        speed = spread(row["images_per_s"] for row in rows).mean
        evaluated = shlex.join(rows[0]["eval"]) if rows[0]["eval"] else ""
        commands = f"`{_seeded_command(rows)}`" + (
            f"; scored with `{evaluated}`" if evaluated else ""
        )
        lines.append(
            f"| {name} | {len(rows)} | {_mean_and_std(val)} | {_mean_and_std(heldout)} "
            f"| {_mean_and_std(gaps)} "
            f"| {steps:.0f} | {speed:.1f} | {commands} |"
        )
    if per_class:
        rows = [result for result in results if result["name"] == per_class]
        if not rows:
            sys.exit(f"--per-class {per_class}: no such recipe in the results ({names})")
        classes = list(rows[0]["val"]["IoU"])
        lines += ["", f"| IoU of {per_class} | val | held-out |", "| --- | --- | --- |"]
        for name in classes:
            val = [row["val"]["IoU"][name] for row in rows]
            heldout = [row["heldout"]["IoU"][name] for row in rows]
            lines.append(f"| {name} | {_mean_and_std(val)} | {_mean_and_std(heldout)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", help="the recipe's name in the results")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--holdout", default="0006R0", help="the drive left out of training")
    parser.add_argument("--eval", nargs="+", default=[], help="overrides of both scores only")
    parser.add_argument("--reuse", type=Path, help="score this trained run instead of training")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--runs", type=Path, help="folder of the runs (default: beside results)")
    parser.add_argument("--table", action="store_true", help="print the results' table")
    parser.add_argument("--per-class", help="with --table: this recipe's IoU per class")
    parser.add_argument("overrides", nargs="*", help="seglab-train overrides of the recipe")
    args = parser.parse_intermixed_args()
    if args.table:
        if not args.results.is_file():
            sys.exit(f"--results {args.results}: no such file; run a recipe first")
        lines = args.results.read_text().splitlines()
        print(table([json.loads(line) for line in lines if line.strip()], args.per_class))
        return
    if not args.name:
        parser.error("name the recipe (or ask for --table)")
    if args.reuse and args.overrides:
        parser.error("--reuse scores a trained run: give --eval overrides, not training ones")
    if args.reuse and not (args.reuse / "checkpoints" / "last.ckpt").is_file():
        parser.error(f"--reuse {args.reuse}: no checkpoints/last.ckpt there")
    check(args)


if __name__ == "__main__":
    main()
