"""Optuna searches that survive failed trials and resume; parallel jobs sharing the machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from seglab.errors import SeglabError
from seglab.runs import job_name
from seglab.sweeps import job_share, objective

optuna = pytest.importorskip("optuna", reason="the sweep extra is not installed")

TINY = [
    "data.num_train=16",
    "data.num_val=8",
    "data.batch_size=8",
    "data.num_workers=0",
    "model.encoder.widths=[8,16]",
    "trainer.max_epochs=1",
    "trainer.num_sanity_val_steps=0",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "test_after_fit=false",
]
# The search space of synthetic_optuna with everything but the lr fixed, plus an attention site
# that does not exist: with sampler seed 45 the three trials draw bottleneck, nowhere,
# bottleneck, so exactly the second one fails (Segmenter raises on construction).
SEARCH = [
    "hparams_search=synthetic_optuna",
    "hydra.sweeper.sampler.seed=45",
    "model/decoder=unet",
    "model/attention=none",
    "loss=ce",
    "model.attention_at=choice(bottleneck,nowhere)",
]


def _train(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "seglab.train", "-m", *args, *TINY, f"paths.output_root={cwd}"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _trials(study_dir: Path) -> list[optuna.trial.FrozenTrial]:
    storage = f"sqlite:///{study_dir / 'study.db'}"
    (summary,) = optuna.get_all_study_summaries(storage)
    assert summary.study_name == "synthetic_optuna"
    return optuna.load_study(study_name="synthetic_optuna", storage=storage).trials


@pytest.mark.slow
def test_optuna_search_records_a_failed_trial_goes_on_and_resumes(tmp_path: Path) -> None:
    result = _train(*SEARCH, "hydra.sweeper.n_trials=3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    study_dir = tmp_path / "train" / "hparams_search" / "synthetic_optuna"
    trials = _trials(study_dir)
    states = [trial.state.name for trial in trials]
    assert states == ["COMPLETE", "FAIL", "COMPLETE"]
    assert trials[1].params["model.attention_at"] == "nowhere"
    assert all(0.0 <= trial.value <= 1.0 for trial in trials if trial.value is not None)
    assert "attention_at='nowhere' is not supported" in result.stdout + result.stderr
    job_dirs = sorted(path.name for path in study_dir.iterdir() if path.is_dir())
    assert len(job_dirs) == 3
    # named by the searched keys, not by the other overrides of the command line
    assert all("attention_at=" in name and "lr=" in name for name in job_dirs)
    assert not any("num_train" in name for name in job_dirs)

    resumed = _train(*SEARCH, "hydra.sweeper.n_trials=1", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Using an existing study" in resumed.stdout + resumed.stderr
    assert len(_trials(study_dir)) == 4
    assert len([path for path in study_dir.iterdir() if path.is_dir()]) == 4


@pytest.mark.slow
def test_parallel_launcher_runs_two_named_jobs_with_their_share_of_threads(
    tmp_path: Path,
) -> None:
    result = _train("hydra/launcher=parallel", "optimizer.lr=0.001,0.003", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "train" / "multirun").iterdir()
    jobs = sorted(path.name for path in sweep_dir.iterdir() if path.is_dir())
    assert jobs == ["lr=0.001", "lr=0.003"]
    threads, _ = job_share(2, 0, len(os.sched_getaffinity(0)), 0)
    for job in jobs:
        assert (sweep_dir / job / "checkpoints" / "best.ckpt").is_file()
        log = (sweep_dir / job / "train.log").read_text()
        assert f"{threads} torch threads" in log


@pytest.mark.parametrize(
    ("n_jobs", "job_num", "cpus", "gpus", "expected"),
    [
        (2, 0, 16, 0, (8, None)),
        (3, 4, 16, 0, (5, None)),
        (4, 1, 2, 0, (1, None)),  # more jobs than cores: one thread each, never zero
        (-1, 0, 8, 0, (1, None)),  # joblib's -1: one job per core
        (-2, 0, 9, 0, (1, None)),
        (2, 3, 16, 2, (8, 1)),  # GPUs round-robin by job number
        (4, 2, 16, 4, (4, 2)),
    ],
)
def test_job_share_splits_cores_and_gpus(
    n_jobs: int, job_num: int, cpus: int, gpus: int, expected: tuple[int, int | None]
) -> None:
    assert job_share(n_jobs, job_num, cpus, gpus) == expected


def test_job_share_rejects_zero_jobs() -> None:
    with pytest.raises(SeglabError, match="hydra.launcher.n_jobs=0"):
        job_share(0, 0, 4, 0)


def test_objective_raises_for_a_missing_or_non_finite_metric() -> None:
    assert objective({"val/mIoU_best": 0.5}, "val/mIoU_best") == 0.5
    assert objective({"val/mIoU_best": 0.5}, None) is None
    with pytest.raises(SeglabError, match="optimized_metric=val/miou is not among"):
        objective({"val/mIoU_best": 0.5}, "val/miou")
    with pytest.raises(SeglabError, match="optimized_metric=val/mIoU_best is nan"):
        objective({"val/mIoU_best": float("nan")}, "val/mIoU_best")


def test_job_name_includes_the_keys_a_config_declares_as_searched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SEGLAB_SWEPT_KEYS", raising=False)
    overrides = ["optimizer.lr=0.01", "model/decoder=fpn", "data.num_train=16"]
    params = {"optimizer.lr": "interval(1e-4, 1e-2)", "model/decoder": "choice(unet, fpn)"}
    assert job_name(overrides, 0, params) == "lr=0.01,decoder=fpn"
    assert job_name(overrides, 0) == "num_train=16,decoder=fpn,lr=0.01"


def test_job_name_shortens_keys_as_far_as_they_stay_distinct(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Swept keys in command-line order, each by its last part unless another shares it."""
    monkeypatch.setenv("SEGLAB_SWEPT_KEYS", "optimizer.lr,model/attention,a.depth,b.depth")
    overrides = ["a.depth=2", "model/attention=scse", "b.depth=3", "optimizer.lr=0.1", "seed=1"]
    assert job_name(overrides, 0) == "lr=0.1,attention=scse,a.depth=2,b.depth=3"
