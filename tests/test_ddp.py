"""Distributed training through Lightning: one run directory, metrics over the whole split."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tiny

from seglab.eval import main as eval_main
from seglab.runs import SWEPT_KEYS_ENV, read_scalars
from seglab.train import main as train_main

# tiny.TINY's 16 val and test images are divisible by the 2 ranks, so the distributed sampler
# pads with no duplicate images
TINY = [*tiny.TINY, "data.eval_batch_size=4"]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_two_process_ddp_on_cpu_logs_metrics_of_the_whole_split(tmp_path: Path) -> None:
    result = _run(
        "seglab.train",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.sync_batchnorm=false",
        *TINY,
        f"paths.output_root={tmp_path}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "train").iterdir()  # both ranks wrote into one run directory
    logged = read_scalars(run_dir)["val/mIoU"]
    assert len(logged) == 2
    # a single process scoring the whole val split must find what the two ranks logged
    # together; a rank logging its own half would differ
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            sys,
            "argv",
            [
                "seglab-eval",
                f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
                "split=val",
                f"paths.output_root={tmp_path / 'eval'}",
                "trainer.enable_progress_bar=false",
            ],
        )
        eval_main()
    (eval_dir,) = (tmp_path / "eval" / "eval").iterdir()
    report = json.loads((eval_dir / "metrics.json").read_text())
    assert report["mIoU"] == pytest.approx(logged[-1][1], abs=1e-6)


def test_multirun_with_a_relaunching_strategy_fails_fast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(SWEPT_KEYS_ENV, "")  # main() sets it for the sweep; undone afterwards
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "seglab-train",
            "-m",
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "seed=1,2",
            f"paths.output_root={tmp_path}",
        ],
    )
    with pytest.raises(SystemExit) as exit_info:
        train_main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "trainer.strategy=ddp relaunches the command for every rank" in err
    assert "ddp_spawn" in err
    assert not list((tmp_path / "train").rglob("checkpoints"))
