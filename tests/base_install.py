"""A base install of seglab, as a folder of links: Python started with ``-S`` (no
site-packages) and this folder on its path sees only the distributions that a plain
``pip install seglab`` brings (its requirements without extras, and theirs), modules and
metadata alike, while the extras stay installed in the test's own environment.

Libraries decide what is installed both by importing (``import scipy``) and by asking
`importlib.metadata` (torchmetrics, Lightning); both see exactly the base install here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def base_closure(root: str = "seglab") -> set[str]:
    """The distributions ``pip install <root>`` installs, with markers read for this Python."""
    seen: set[str] = set()
    pending = [root]
    while pending:
        name = _normal(pending.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requirements = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requirements:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return seen


def base_site(folder: Path) -> Path:
    """``folder`` filled with links to what the base closure's distributions installed: their
    top-level modules, packages, data folders and ``.dist-info``; seglab itself comes from the
    checkout (the test puts it on the path)."""
    closure = base_closure() - {"seglab"}
    folder.mkdir(parents=True, exist_ok=True)
    for distribution in metadata.distributions():
        if _normal(distribution.metadata["Name"] or "") not in closure:
            continue
        site = Path(distribution.locate_file(""))
        for top in {file.parts[0] for file in distribution.files or []} - {".."}:
            link = folder / top
            if not link.exists() and (site / top).exists():
                link.symlink_to(site / top)
    return folder


def run_base(site: Path, args: list[str], cwd: Path, timeout: float = 600) -> tuple[int, str]:
    """``python -S <args>`` with only ``site`` and the checkout importable; exit code and the
    output, stdout and stderr interleaved as a terminal shows them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(site)])
    process = subprocess.run(
        [sys.executable, "-S", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    return process.returncode, process.stdout
