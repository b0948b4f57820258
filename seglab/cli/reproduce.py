"""``seglab-reproduce <run dir> [overrides]``: train a run again from its saved config into a new
run directory, then compare the metrics of both (`seglab.runs.reproduce`)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

from hydra.errors import HydraException

from seglab.errors import fail
from seglab.runs.directories import read_scalars
from seglab.runs.environment import environment_changes
from seglab.runs.reproduce import (
    compare,
    is_saved_config_dir,
    new_run_dir,
    summary,
    untrusted_run,
    upgraded_config_dir,
)

PROG = "seglab-reproduce"


def main() -> None:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train a run again from its .hydra/config.yaml into a new run directory and "
        "compare the metrics of both. Exit status: 0 identical, 1 different, 2 bad input.",
    )
    parser.add_argument("run_dir", type=Path, help="a run directory, e.g. outputs/train/<run>")
    parser.add_argument(
        "overrides", nargs="*", help="overrides for the re-run, e.g. paths.output_root=/tmp/runs"
    )
    args = parser.parse_args()
    saved = args.run_dir.resolve() / ".hydra"
    if not is_saved_config_dir(saved):
        fail(
            PROG,
            f"{args.run_dir} is not a run directory: it has no .hydra/config.yaml and "
            ".hydra/hydra.yaml; give one such as outputs/train/<run>",
        )
    with tempfile.TemporaryDirectory(prefix="seglab-reproduce-") as scratch:
        rerun(args.run_dir, saved, args.overrides, Path(scratch) / ".hydra")


def rerun(run_arg: Path, saved: Path, overrides: list[str], scratch: Path) -> NoReturn:
    """Check, re-run and compare ``saved`` (``<run>/.hydra``); exits with the verdict."""
    try:
        source = upgraded_config_dir(saved, scratch)
        untrusted = untrusted_run(source)
    except Exception as error:  # YAML that does not parse, or is not a mapping
        fail(PROG, f"cannot read the config of {run_arg}: {type(error).__name__}: {error}")
    if untrusted is not None:
        untrusted = untrusted.replace(str(source), str(saved))  # the file the user has
        fail(
            PROG,
            f"{untrusted}, which a re-run could run code through, so nothing was re-run; if you "
            f"trust this run, train it again yourself: seglab-train --config-path {saved} "
            "--config-name config",
        )
    try:
        original = summary(read_scalars(run_arg))
    except FileNotFoundError as error:
        fail(PROG, f"{run_arg} has no metrics to compare with: {error}")
    try:
        run_dir = new_run_dir(source, overrides)
    except HydraException as error:
        fail(PROG, f"cannot compose the re-run of {run_arg}: {error}")
    # pinned to the directory computed above, so that the comparison reads this very re-run
    pinned = "'" + str(run_dir).replace("\\", "\\\\").replace("'", "\\'") + "'"
    command = [sys.executable, "-m", "seglab.cli.train", "--config-path", str(source)]
    command += ["--config-name", "config", *overrides, f"hydra.run.dir={pinned}"]
    print(f"re-running {run_arg} into {run_dir}", flush=True)
    if subprocess.run(command).returncode != 0:
        fail(PROG, f"the re-run of {run_arg} failed (its output is above); nothing to compare")
    table, largest, where = compare(original, summary(read_scalars(run_dir)))
    print(table)
    print(f"original: {run_arg.resolve()}\nre-run:   {run_dir}")
    if largest == 0:
        print("verdict: identical")
        sys.exit(0)
    print(f"verdict: differs (largest difference {largest!r}, in {where})")
    print(environment_changes(saved, run_dir / ".hydra"))
    sys.exit(1)
