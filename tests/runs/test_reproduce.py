"""Reproducing a run: what its directory records, a re-run from its saved config, and
seglab-reproduce's comparison."""

from __future__ import annotations

import contextlib
import io
import json
import math
import platform
import re
import shutil
import socket
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import tiny
import torch
from omegaconf import OmegaConf

import seglab
from seglab.cli.reproduce import main as reproduce_main
from seglab.config.upgrade import MOVED_TARGETS
from seglab.runs.directories import read_scalars
from seglab.runs.environment import git_state
from seglab.runs.reproduce import compare, new_run_dir, untrusted_run, upgraded_config_dir

TINY = [*tiny.TINY, "trainer.deterministic=true", "seed=7"]
RUN_NAME = re.compile(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d-\d{6}")


def _files(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # trained here; seglab-reproduce re-runs it in a fresh interpreter
    return tiny.train_once(tmp_path_factory.mktemp("runs"), *TINY)


@pytest.fixture(scope="module")
def reproduced(original: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    """seglab-reproduce of `original` (a seglab-train --config-path re-run, from another
    directory), with `original`'s files from before it and what it printed."""
    before = _files(original)
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        patch.chdir(elsewhere)
        patch.setattr(sys, "argv", ["seglab-reproduce", str(original)])
        with pytest.raises(SystemExit) as exit_info:
            reproduce_main()
    assert exit_info.value.code == 0, out.getvalue()
    (run_dir,) = (path for path in original.parent.iterdir() if path != original)
    return run_dir, before, out.getvalue()


@pytest.mark.slow
def test_environment_json_records_what_the_config_does_not(original: Path) -> None:
    info = json.loads((original / ".hydra" / "environment.json").read_text())
    assert info["seed"] == 7
    assert info["python"] == platform.python_version()
    assert info["packages"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert {"pytorch-lightning", "hydra-core", "omegaconf", "numpy", "seglab"} <= set(
        info["packages"]
    )
    assert info["command"][1:] == [*TINY, f"paths.output_root={original.parents[1]}"]
    assert info["hostname"] == socket.gethostname()
    assert datetime.fromisoformat(info["time"]).tzinfo is not None
    source = Path(seglab.__file__).resolve().parents[1]
    if shutil.which("git") and (source / ".git").exists():
        head = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True
        )
        assert info["git_commit"] == head.stdout.strip()
        # dirty: a tracked file differs from HEAD, or a file git does not ignore is untracked
        changed = subprocess.run(["git", "-C", str(source), "diff", "--quiet", "HEAD"])
        untracked = subprocess.run(
            ["git", "-C", str(source), "ls-files", "--others", "--exclude-standard"],
            capture_output=True,
            text=True,
        )
        assert info["git_dirty"] is (changed.returncode != 0 or bool(untracked.stdout.strip()))


def test_git_state_is_none_outside_a_checkout_or_without_git(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert git_state(tmp_path) == (None, None)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert git_state(Path(seglab.__file__).resolve().parents[1]) == (None, None)


@pytest.mark.slow
def test_rerun_from_saved_config_gets_a_new_run_dir(original: Path, reproduced: tuple) -> None:
    run_dir, before, _ = reproduced
    assert RUN_NAME.fullmatch(run_dir.name), run_dir
    assert _files(original) == before
    config = (run_dir / ".hydra" / "config.yaml").read_text()
    assert config == (original / ".hydra" / "config.yaml").read_text()
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()


@pytest.mark.slow
def test_deterministic_rerun_logs_the_same_val_miou_to_the_last_digit(
    original: Path, reproduced: tuple
) -> None:
    old, new = read_scalars(original), read_scalars(reproduced[0])
    assert len(old["val/mIoU"]) == 2
    assert new["val/mIoU"] == old["val/mIoU"]
    assert {tag: new[tag] for tag in old if tag.startswith("val/")} == {
        tag: points for tag, points in old.items() if tag.startswith("val/")
    }


@pytest.mark.slow
def test_seglab_reproduce_prints_both_runs_and_says_identical(
    original: Path, reproduced: tuple
) -> None:
    run_dir, _, out = reproduced
    best = repr(max(value for _, value in read_scalars(original)["val/mIoU"]))
    assert re.search(rf"best val/mIoU\s+{re.escape(best)}\s+{re.escape(best)}\s+0\.0", out)
    assert "val/mIoU epoch 1" in out and "final val/loss" in out
    assert f"original: {original}" in out and f"re-run:   {run_dir}" in out
    assert out.rstrip().endswith("verdict: identical")


def test_seglab_reproduce_of_a_path_that_is_no_run_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setattr(sys, "argv", ["seglab-reproduce", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_info:
        reproduce_main()
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"seglab-reproduce: error: {tmp_path} is not")


def test_compare_finds_the_largest_difference_and_missing_rows() -> None:
    table, largest, where = compare(
        {"best val/mIoU": 0.5, "val/mIoU epoch 0": 0.25},
        {"best val/mIoU": 0.5, "val/mIoU epoch 0": 0.125},
    )
    assert (largest, where) == (0.125, "val/mIoU epoch 0")
    assert table.splitlines() == [
        "metric            original  re-run  difference",
        "best val/mIoU          0.5     0.5         0.0",
        "val/mIoU epoch 0      0.25   0.125       0.125",
    ]
    table, largest, where = compare({"final val/loss": 1.0}, {})
    assert (math.isinf(largest), where) == (True, "final val/loss")
    assert table.splitlines() == [
        "metric          original  re-run  difference",
        "final val/loss       1.0       -     missing",
    ]


def _as_an_earlier_seglab_saved_it(saved: Path, old: Path) -> None:
    """``saved`` (a ``.hydra`` directory) rewritten with the module paths of before the package
    layout and without the keys that runs of before ``mode``, ``method`` and ``on_nonfinite``
    did not write."""
    moved_back = {new: old for old, new in MOVED_TARGETS.items()}

    def rename(node: object) -> None:
        if isinstance(node, dict):
            if node.get("_target_") in moved_back:
                node["_target_"] = moved_back[node["_target_"]]
            for value in node.values():
                rename(value)

    old.mkdir(parents=True)
    for name in ("config.yaml", "hydra.yaml"):
        node = OmegaConf.to_container(OmegaConf.load(saved / name), resolve=False)
        rename(node)
        if name == "config.yaml":
            for key in ("mode", "threshold", "method", "on_nonfinite"):
                del node[key]
        OmegaConf.save(OmegaConf.create(node), old / name)


@pytest.mark.slow
def test_a_run_saved_by_an_earlier_seglab_is_rerun_in_todays_form(
    original: Path, tmp_path: Path
) -> None:
    saved, old = original / ".hydra", tmp_path / "old" / ".hydra"
    _as_an_earlier_seglab_saved_it(saved, old)
    text = (old / "config.yaml").read_text() + (old / "hydra.yaml").read_text()
    assert "seglab.schedulers.poly" in text and "seglab.runs.RunDirGuard" in text
    assert untrusted_run(old) is not None  # as it stands, today's allowlist refuses it
    upgraded = upgraded_config_dir(old, tmp_path / "scratch")
    assert untrusted_run(upgraded) is None
    for name in ("config.yaml", "hydra.yaml"):  # exactly what today's seglab wrote
        assert OmegaConf.load(upgraded / name) == OmegaConf.load(saved / name), name
    assert new_run_dir(upgraded, []).parent == original.parent  # composes as a re-run
    before = _files(old.parent)
    assert upgraded_config_dir(saved, tmp_path / "unused") == saved  # today's: used as it is
    assert _files(old.parent) == before and not (tmp_path / "unused").exists()
