"""Run README.md's first set-up command as a newcomer runs it, and fail on any warning line.

    python scripts/checks/check_readme_command.py [--keep]

The command (the first ``bash`` block under "## Set up") creates a venv, installs seglab with
no extras and trains the default experiment. The test suite runs in a venv with every extra,
so it cannot see an import that only an extra satisfies, or a library's warning that a base
install prints; this runs the command as written, with ``bash -c``, in a copy of the checkout's
tracked and untracked (not ignored) files in a temporary folder, so that its ``.venv`` and
``outputs/`` are its own.

pip's own notices are silenced (``PIP_QUIET=2``: errors only): they speak of the machine's pip
configuration, not of seglab. Every other line is shown as it comes; the script exits 1 when
the command fails or when a line holds a Python traceback or a warning, listing them.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: A line that reads as something to fix: a Python warning (``UserWarning:``, or the
#: ``<file>.py:<line>: `` that starts one, which Lightning prints without its category), a
#: logged one (``[WARNING]``), or the start of a traceback.
TROUBLE = re.compile(r"warning|\.py:\d+: |traceback \(most recent call last\)", re.IGNORECASE)


def first_command(readme: str) -> str:
    """The first ``bash`` code block under the "## Set up" heading."""
    section = re.search(r"^## Set up\n(.*?)(?=^## )", readme, re.MULTILINE | re.DOTALL)
    if section is None:
        raise SystemExit("README.md has no '## Set up' section")
    block = re.search(r"^```bash\n(.*?)^```", section.group(1), re.MULTILINE | re.DOTALL)
    if block is None:
        raise SystemExit("README.md's '## Set up' section has no ```bash block")
    return block.group(1).strip()


def trouble_lines(output: str) -> list[str]:
    """The lines of ``output`` that hold a warning or a traceback (progress bars redraw with
    carriage returns, so each redraw counts as a line)."""
    return [line for line in re.split(r"[\r\n]+", output) if TROUBLE.search(line)]


def copy_checkout(target: Path) -> None:
    """The checkout's files as git sees them (tracked, and untracked but not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary checkout")
    args = parser.parse_args()
    command = first_command((REPO / "README.md").read_text())
    folder = Path(tempfile.mkdtemp(prefix="seglab-readme-"))
    checkout = folder / "seglab"
    copy_checkout(checkout)
    print(f"in {checkout}: {command}", flush=True)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    # a venv of the caller (CI's test venv) must not be the one the command's `pip` finds
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not Path(p, "activate").exists()
    )
    env.update(PIP_QUIET="2", PIP_DISABLE_PIP_VERSION_CHECK="1")
    process = subprocess.Popen(
        ["bash", "-c", command],
        cwd=checkout,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    output = []
    for line in process.stdout:
        sys.stdout.write(line)
        output.append(line)
    code = process.wait()
    trouble = trouble_lines("".join(output))
    if args.keep:
        print(f"kept {checkout}")
    else:
        shutil.rmtree(folder, ignore_errors=True)
    if code != 0 or trouble:
        listed = "".join(f"\n  {line.strip()[:300]}" for line in trouble)
        sys.exit(
            f"README's first command: exit code {code}, {len(trouble)} warning line(s){listed}"
        )
    print("README's first command: it ran to the end with no warning line")


if __name__ == "__main__":
    main()
