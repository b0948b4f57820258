"""Install seglab with every dependency at its floor and run the quick tests there.

    python scripts/checks/check_floors.py [--venv .venv-floors]     # Python 3.11 or newer (tomllib)

A lower bound in pyproject.toml is a promise that seglab runs on that release; nothing else
checks it, since every other install resolves to the newest releases. This script reads every
requirement of pyproject.toml (build system, dependencies, and every extra, so an extra added
later is covered too), pins each package to the highest lower bound stated for it, creates a
fresh virtual environment, installs the project with all its extras under those pins, prints
what it installed, and runs there ``pytest -m "not slow"`` and the few slow tests that reach
what the quick subset does not (Trainer.fit and .test, the ONNX exporter, an Optuna search, a
Hydra launcher). Packages that seglab does not name resolve to their newest compatible release,
as they would for a user who installs the floors.

torch and torchvision are the exception: they are pinned to the releases of the interpreter
that runs this script (which must satisfy their floors), because each release of them pulls
gigabytes of CUDA libraries. Their floors were found by reading the sources of their
releases instead; pyproject.toml says how.

Exits nonzero, naming the step, when a floor cannot be read, installed, or fails a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import venv
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as installed_version
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
#: packages kept at this interpreter's releases rather than their floors
KEEP_INSTALLED = ("torch", "torchvision")
#: slow tests run besides the quick subset, for the dependencies that only they reach
REACH = (
    # Lightning's Trainer.fit and Trainer.test (TensorBoard logging, checkpoints)
    "tests/workflows/test_train.py::test_run_directory_holds_config_checkpoints_and_events",
    # torch.onnx's dynamo exporter (onnx, onnxscript) and onnxruntime
    "tests/workflows/test_export.py::test_onnx_matches_pytorch_at_two_sizes[default]",
    # Optuna's ask-and-tell and its SQLite storage (SQLAlchemy, alembic)
    "tests/sweeps/test_sweeps.py::test_optuna_search_records_failed_trials_goes_on_and_resumes",
    # MLflow's SQLite tracking store through Lightning's MLFlowLogger
    "tests/sweeps/test_mlflow_logging.py::test_metrics_are_tensorboards_scalars_under_the_same_names",
    # hydra-joblib-launcher
    "tests/sweeps/test_sweeps.py::test_parallel_launcher_runs_two_named_jobs_with_their_share_of_threads",
)
#: the operators whose version is a release the requirement admits, hence a floor to pin
FLOOR_OPERATORS = (">=", "==", "~=", "===")


def requirements(pyproject: dict) -> list[Requirement]:
    """Every requirement that applies to this interpreter: the build system's, the project's
    and each extra's, less the project's references to its own extras."""
    project = pyproject["project"]
    texts = [*pyproject["build-system"]["requires"], *project.get("dependencies", [])]
    for group in project.get("optional-dependencies", {}).values():
        texts.extend(group)
    found = [Requirement(text) for text in texts]
    own = canonicalize_name(project["name"])
    return [
        req
        for req in found
        if canonicalize_name(req.name) != own
        and (req.marker is None or req.marker.evaluate({"extra": ""}))
    ]


def releases(python: str, name: str) -> list[Version]:
    """The releases of ``name`` that pip, as configured here, can install for ``python``."""
    shown = subprocess.run(
        [python, "-m", "pip", "index", "versions", name], capture_output=True, text=True
    )
    lines = [line for line in shown.stdout.splitlines() if line.startswith("Available versions:")]
    if shown.returncode != 0 or not lines:
        sys.exit(f"check_floors: pip finds no release of {name}: {shown.stderr.strip()}")
    return [Version(v) for v in lines[0].split(":", 1)[1].split(",")]


def floor_pins(python: str, reqs: list[Requirement]) -> dict[str, str]:
    """``{name: version}``: for each package its floor, the highest lower bound stated for it
    anywhere, which must be the first release installable here that meets every specifier
    stated for it (a floor below that promises what no user can install); torch and
    torchvision at the releases installed here."""
    specs: dict[str, SpecifierSet] = {}
    for req in reqs:
        name = canonicalize_name(req.name)
        specs[name] = specs.get(name, SpecifierSet()) & req.specifier
    floors = {name: spec for name, spec in specs.items() if name not in KEEP_INSTALLED}
    with ThreadPoolExecutor(8) as pool:  # one pip per package: they wait on the index
        listed = pool.map(lambda name: releases(python, name), floors)
        found = dict(zip(floors, listed, strict=True))
    try:
        pins = {name: str(Version(installed_version(name))) for name in KEEP_INSTALLED}
    except PackageNotFoundError as missing:
        sys.exit(f"check_floors: {missing} is not installed: run this with the project's venv")
    for name, spec in sorted(floors.items()):
        bounds = [Version(s.version) for s in spec if s.operator in FLOOR_OPERATORS]
        if not bounds:
            sys.exit(f"check_floors: {name}{spec} in pyproject.toml has no lower bound: add one")
        first = min((v for v in found[name] if v in spec), default=None)
        if first is None:
            sys.exit(f"check_floors: no release of {name}{spec} is installable here")
        if first != max(bounds):
            sys.exit(
                f"check_floors: {name}{spec}: {max(bounds)} is no release installable here, "
                f"the first one is {first}: make that the floor"
            )
        pins[name] = str(first)
    for name in KEEP_INSTALLED:
        if name in specs and Version(pins[name]) not in specs[name]:
            sys.exit(f"check_floors: {name} {pins[name]} used here is outside {specs[name]}")
    return dict(sorted(pins.items()))


def run(step: str, command: list[str], **kwargs) -> None:
    """Run one step of the check, stopping the script with its name if it fails."""
    print(f"check_floors: {step}: {' '.join(command)}", flush=True)
    start = time.monotonic()
    if subprocess.run(command, **kwargs).returncode != 0:
        sys.exit(f"check_floors: FAILED at {step}")
    print(f"check_floors: {step}: done in {time.monotonic() - start:.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--venv", type=Path, default=ROOT / ".venv-floors", help="made anew on each run"
    )
    args = parser.parse_args()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = ",".join(pyproject["project"].get("optional-dependencies", {}))

    start = time.monotonic()
    shutil.rmtree(args.venv, ignore_errors=True)
    venv.create(args.venv, with_pip=True)
    python = str(args.venv / "bin" / "python")
    pins = floor_pins(python, requirements(pyproject))
    pin_file = args.venv / "floors.txt"
    pin_file.write_text("".join(f"{name}=={pin}\n" for name, pin in pins.items()))
    took = time.monotonic() - start
    print(f"check_floors: the floors, read in {took:.0f} s (torch, torchvision: as used here)")
    print("".join(f"  {name}=={pin}\n" for name, pin in pins.items()), end="", flush=True)
    build = [canonicalize_name(Requirement(r).name) for r in pyproject["build-system"]["requires"]]
    pip = [python, "-m", "pip", "install", "-q", "-c", str(pin_file)]
    # the build backend at its floor too: installed first, then used as it is (no isolation)
    run("install the build system", [*pip, *build])
    run(
        "install the project",
        [*pip, "--no-build-isolation", "-e", f"{ROOT}[{extras}]"],
        cwd=ROOT,
    )
    run("check the installed requirements", [python, "-m", "pip", "check"])
    listed = subprocess.run(
        [python, "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True
    )
    got = {canonicalize_name(p["name"]): p["version"] for p in json.loads(listed.stdout)}
    for name, pin in pins.items():
        if got.get(name) is None or Version(got[name]) != Version(pin):
            sys.exit(f"check_floors: {name} installed as {got.get(name)}, not its floor {pin}")
    others = sorted(f"{name}=={v}" for name, v in got.items() if name not in pins)
    print(f"check_floors: installed at the floors, and around them: {' '.join(others)}")

    env = dict(os.environ, VIRTUAL_ENV=str(args.venv))
    env["PATH"] = os.pathsep.join([str(args.venv / "bin"), env.get("PATH", "")])
    env.pop("PYTHONPATH", None)
    pytest = [python, "-m", "pytest", "-p", "no:cacheprovider"]
    run("the quick tests", [*pytest, "-m", "not slow"], cwd=ROOT, env=env)
    run("the slow tests that reach the rest", [*pytest, *REACH], cwd=ROOT, env=env)
    print(f"check_floors: passed in {time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    main()
