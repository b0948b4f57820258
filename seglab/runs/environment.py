"""The environment record of a run (``.hydra/environment.json``): what its config does not say
about how it was made, written when a run starts and compared by ``seglab-reproduce``; and the
machine a measurement ran on, which the benchmarks record beside their numbers."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

#: Distributions whose versions <run>/.hydra/environment.json records (absent ones are left out).
_RECORDED_PACKAGES = (
    "torch",
    "torchvision",
    "pytorch-lightning",
    "hydra-core",
    "omegaconf",
    "torchmetrics",
    "tensorboard",
    "numpy",
    "timm",
    "seglab",
)


#: CPU flags (Linux ``/proc/cpuinfo``) under which bf16 autocast trains faster than float32:
#: AMX's bfloat16 tiles. With AVX-512 BF16 alone it trained at 0.81x float32's speed, without
#: bf16 instructions at 0.41x (AVX-512) and 0.11x (AVX2)
#: (scripts/benchmarks/precision_benchmark.py).
BF16_FLAGS = frozenset({"amx_bf16"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The instruction-set flags of the first CPU listed, empty where the system does not say."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name; what the platform says where ``cpuinfo`` does not name it."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        lines = []
    name = next((line.split(":", 1)[1].strip() for line in lines if "model name" in line), "")
    return name or platform.processor() or platform.machine()


def cpu_description(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name and the instruction sets that its training speed depends on, to
    print beside a measured speed (the same command runs at different speeds elsewhere)."""
    flags = cpu_flags(cpuinfo)
    if not flags:  # the system does not list them
        return cpu_model(cpuinfo)
    shown = [flag for flag in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if flag in flags]
    return f"{cpu_model(cpuinfo)} ({', '.join(shown) or 'no AVX2'})"


def machine_description(
    flags: Sequence[str] = (), cpuinfo: Path = Path("/proc/cpuinfo")
) -> dict[str, Any]:
    """What a measured speed depends on, to record beside it: the CPU with those of ``flags``
    it has (the instruction sets the measurement cares about), cores, torch threads, GPU and
    versions."""
    present = cpu_flags(cpuinfo)
    return {
        "cpu": cpu_model(cpuinfo),
        "cpu_flags": [flag for flag in flags if flag in present],
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def cpu_precision(flags: frozenset[str] | None = None) -> str:
    """``trainer=cpu``'s precision: bf16 autocast where the CPU has AMX, else float32, which
    trains faster than bf16 on CPUs without it (measured: docs/benchmarks.md)."""
    flags = cpu_flags() if flags is None else flags
    return "bf16-mixed" if flags & BF16_FLAGS else "32-true"


def git_state(source: Path) -> tuple[str | None, bool | None]:
    """Commit and dirty flag of the git checkout whose top level is ``source``, else Nones.

    Only a checkout rooted at ``source`` describes seglab's code: an installed seglab may sit
    inside some other repository (a virtual environment in a project), and a run never fails
    for want of git.
    """

    def git(*args: str) -> str | None:
        try:
            result = subprocess.run(
                ["git", "-C", str(source), *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return result.stdout.strip() if result.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != source:
        return None, None
    commit, status = git("rev-parse", "HEAD"), git("status", "--porcelain")
    return commit, None if status is None else bool(status)


def write_environment(record_dir: Path, seed: int) -> None:
    """``<record_dir>/environment.json`` (``<run>/.hydra/``, or ``.hydra/resume-<time>/`` of a
    resume): what the config does not say about how a run was made.

    The seed actually used (``seed: null`` takes ``PL_GLOBAL_SEED``, else 0), the code's
    commit and the package versions are what a re-run from ``.hydra/config.yaml`` needs to
    match the run exactly.
    """
    commit, dirty = git_state(Path(__file__).resolve().parents[2])
    versions = {}
    for name in _RECORDED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    info = {
        "seed": seed,
        "git_commit": commit,
        "git_dirty": dirty,
        "python": platform.python_version(),
        "packages": versions,
        "cuda": torch.version.cuda,
        "command": sys.argv,
        "hostname": socket.gethostname(),
        "time": datetime.now().astimezone().isoformat(timespec="microseconds"),
    }
    record_dir.mkdir(parents=True, exist_ok=True)
    (record_dir / "environment.json").write_text(json.dumps(info, indent=2) + "\n")


def environment_changes(saved: Path, rerun: Path) -> str:
    """What differs between the runs' environment.json files: the usual cause of a difference."""
    try:
        old, new = (json.loads((path / "environment.json").read_text()) for path in (saved, rerun))
    except FileNotFoundError as error:
        return f"environment: cannot compare, {error.filename} does not exist"

    def flat(info: dict) -> dict[str, object]:
        keys = ("git_commit", "git_dirty", "python", "cuda", "hostname")
        packages = {f"packages.{name}": version for name, version in info["packages"].items()}
        return {**{key: info.get(key) for key in keys}, **packages}

    old, new = flat(old), flat(new)
    changed = [key for key in {**old, **new} if old.get(key) != new.get(key)]
    if not changed:
        return "environment: the same commit, packages, python and host"
    lines = [f"  {key}: {old.get(key)} -> {new.get(key)}" for key in changed]
    return "environment changes:\n" + "\n".join(lines)
