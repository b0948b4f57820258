"""Run by tests/test_base_install.py in a base install's interpreter (tests/base_install.py):
seglab's commands, each run in this one process (a fresh interpreter would spend seconds on
torch's import for each) as a user types them, with a line before each naming it and one after
with its exit code.

    python -S tests/base_commands.py 'seglab-train data.num_train=32' 'seglab-eval ckpt_path=...'

A ``{run}`` in a command stands for the run directory of the last seglab-train.
"""

from __future__ import annotations

import importlib
import shlex
import sys
from pathlib import Path

from hydra.core.global_hydra import GlobalHydra

COMMANDS = {
    "seglab-train": "seglab.cli.train",
    "seglab-eval": "seglab.cli.eval",
    "seglab-compare": "seglab.cli.compare",
    "seglab-predict": "seglab.cli.predict",
    "seglab-export": "seglab.cli.export",
    "seglab-data": "seglab.cli.data",
}


def run(line: str, last_run: str) -> int:
    name, *args = shlex.split(line.replace("{run}", last_run))
    main = importlib.import_module(COMMANDS[name]).main
    sys.argv = [name, *args]
    try:
        main()
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1
    finally:
        GlobalHydra.instance().clear()
    return 0


def main() -> None:
    last_run = ""
    for line in sys.argv[1:]:
        print(f"=== {line}", flush=True)
        code = run(line, last_run)
        sys.stdout.flush()
        sys.stderr.flush()
        print(f"=== exit {code}", flush=True)
        runs = sorted(Path("outputs", "train").glob("*/checkpoints/best.ckpt"))
        last_run = str(runs[-1].parents[1]) if runs else ""


if __name__ == "__main__":
    main()
