"""Optuna searches that survive failed trials, resume and prune; parallel jobs sharing the
machine."""

from __future__ import annotations

import csv
import importlib.util
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from seglab.cli.compare import main as compare_main
from seglab.cli.train import main as train_main
from seglab.errors import SeglabError, SweepError
from seglab.runs.directories import job_name, read_scalars
from seglab.sweeps.objective import job_share, objective

optuna = pytest.importorskip("optuna", reason="the sweep extra is not installed")
from optuna.distributions import (  # noqa: E402
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from hydra_plugins.seglab_optuna_sweeper.space import override_value, parse_space  # noqa: E402

TINY = [
    "data.num_train=16",
    "data.num_val=8",
    "data.loader.batch_size=8",
    "data.loader.num_workers=0",
    "model.encoder.widths=[8,16]",
    "trainer.max_epochs=1",
    "trainer.num_sanity_val_steps=0",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "test_after_fit=false",
]
# The search space of synthetic_optuna with everything but the lr fixed, plus an attention site
# that does not exist: the grid sampler runs each of the four points once, and exactly the two
# with the attention site `nowhere` fail (Segmenter raises on construction).
SEARCH = [
    "hparams_search=synthetic_optuna",
    "hydra.sweeper.sampler=grid",
    "model/decoder=unet",
    "model/attention=none",
    "loss=ce",
    "model.attention_at=choice(bottleneck,nowhere)",
    "optimizer.lr=choice(0.001,0.003)",
]
STUDY = Path("train", "hparams_search", "synthetic_optuna")


def _train(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """seglab-train -m in a fresh interpreter, as a user starts it (its output whole: Optuna
    logs to the stream it was imported with, which this process's capture does not hold)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "seglab.cli.train", "-m", *TINY, *args, f"paths.output_root={cwd}"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _train_here(cli, *args: str, cwd: Path) -> tuple[int, str, str]:
    """``_train`` in this process: exit code, stdout and stderr."""
    return cli(train_main, "-m", *TINY, *args, f"paths.output_root={cwd}", cwd=cwd)


def _storage(study_dir: Path) -> str:
    return f"sqlite:///{study_dir / 'study.db'}"


def _trials(study_dir: Path) -> list[optuna.trial.FrozenTrial]:
    (summary,) = optuna.get_all_study_summaries(_storage(study_dir))
    assert summary.study_name == "synthetic_optuna"
    return optuna.load_study(study_name="synthetic_optuna", storage=_storage(study_dir)).trials


def _job_dirs(study_dir: Path) -> list[Path]:
    return sorted(path for path in study_dir.iterdir() if path.is_dir())


@pytest.mark.slow
def test_optuna_search_records_failed_trials_goes_on_and_resumes(tmp_path: Path) -> None:
    # two trials at a time, through the (basic) launcher
    result = _train(*SEARCH, "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    study_dir = tmp_path / STUDY
    trials = _trials(study_dir)
    assert len(trials) == 4
    points = {(t.params["model.attention_at"], t.params["optimizer.lr"]) for t in trials}
    assert points == {(site, lr) for site in ("bottleneck", "nowhere") for lr in (0.001, 0.003)}
    for trial in trials:
        failed = trial.params["model.attention_at"] == "nowhere"
        assert trial.state.name == ("FAIL" if failed else "COMPLETE")
        if not failed:  # the value is the val/mIoU_best its job logged
            site, lr = trial.params["model.attention_at"], trial.params["optimizer.lr"]
            (job,) = [
                d for d in _job_dirs(study_dir) if f"at={site}" in d.name and f"={lr}" in d.name
            ]
            logged = read_scalars(job)["val/mIoU_best"][-1][1]
            assert trial.value == pytest.approx(logged, rel=1e-6)
        # every completed trial reported its val/mIoU after each epoch
        assert failed or list(trial.intermediate_values) == [0]
    assert "attention_at='nowhere' is not supported" in result.stdout + result.stderr
    results = OmegaConf.load(study_dir / "optimization_results.yaml")
    assert results.best_value == max(t.value for t in trials if t.value is not None)
    assert results.trials == {"COMPLETE": 2, "FAIL": 2}
    job_dirs = [path.name for path in _job_dirs(study_dir)]
    assert len(job_dirs) == 4
    # named by the searched keys, not by the other overrides of the command line
    assert all("attention_at=" in name and "lr=" in name for name in job_dirs)
    assert not any("num_train" in name for name in job_dirs)

    resumed = _train(
        *SEARCH, "hydra.sweeper.sampler=random", "hydra.sweeper.n_trials=1", cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Using an existing study" in resumed.stdout + resumed.stderr
    assert len(_trials(study_dir)) == 5
    assert len(_job_dirs(study_dir)) == 5


@pytest.mark.slow
def test_median_pruner_prunes_a_trial_below_the_median_and_its_run_says_so(
    tmp_path: Path, cli, capsys: pytest.CaptureFixture[str]
) -> None:
    """A finished trial with val/mIoU 1.0 after every epoch, which no tiny run reaches, makes
    the median pruner prune the next trial after its first epoch."""
    study_dir = tmp_path / STUDY
    study_dir.mkdir(parents=True)
    study = optuna.create_study(
        study_name="synthetic_optuna", storage=_storage(study_dir), direction="maximize"
    )
    study.add_trial(optuna.trial.create_trial(value=1.0, intermediate_values={0: 1.0, 1: 1.0}))
    space = [
        "optimizer.lr=tag(log, interval(1e-3, 1e-2))",
        "optimizer.weight_decay=interval(0, 0.01)",
        "data.loader.batch_size=range(4, 9, 4)",
        "seed=int(interval(1, 3))",
        "trainer.max_epochs=2",
        "model/decoder=choice(unet, fpn)",
    ]
    pruner = ["hydra.sweeper.pruner=median", "hydra.sweeper.pruner_startup_trials=1"]
    code, _, err = _train_here(
        cli,
        "hparams_search=synthetic_optuna",
        "hydra.sweeper.n_trials=1",
        *pruner,
        *space,
        cwd=tmp_path,
    )
    assert code == 0, err[-3000:]
    trial = _trials(study_dir)[1]
    assert trial.state.name == "PRUNED"
    assert list(trial.intermediate_values) == [0]
    (run_dir,) = _job_dirs(study_dir)
    assert OmegaConf.load(run_dir / "pruned.yaml").epoch == 0
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()

    # every kind of search value reaches the trial's config with its type
    config = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    assert type(config.optimizer.lr) is float and 1e-3 <= config.optimizer.lr <= 1e-2
    assert config.optimizer.lr == trial.params["optimizer.lr"]
    assert type(config.optimizer.weight_decay) is float
    assert config.data.loader.batch_size in (4, 8) and type(config.data.loader.batch_size) is int
    assert config.seed in (1, 2, 3) and type(config.seed) is int
    decoder = trial.params["model/decoder"]
    assert (
        OmegaConf.load(run_dir / ".hydra" / "hydra.yaml").hydra.runtime.choices["model/decoder"]
        == decoder
    )

    compare_main([str(study_dir), "--format", "csv"])
    (row,) = csv.DictReader(io.StringIO(capsys.readouterr().out))
    assert row["pruned"] == "after epoch 0"
    assert row["epochs"] == "1"  # of trainer.max_epochs=2


# launches Hydra's multirun in a fresh interpreter (seconds each)
@pytest.mark.slow
@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("hydra.sweeper.sampler=bayes", "hydra.sweeper.sampler=bayes is not a sampler"),
        ("hydra.sweeper.pruner=sometimes", "hydra.sweeper.pruner=sometimes is not a pruner"),
        ("hydra.sweeper.storage=nosuchdb://here", "hydra.sweeper.storage=nosuchdb://here cannot"),
        (
            "optimizer.nosuch=interval(0, 1)",
            "optimizer.nosuch=interval(0, 1): no key optimizer.nosuch",
        ),
        (
            "model/decoder=choice(unet, nope)",
            "model/decoder=choice(unet, nope): config group model/decoder has no option nope",
        ),
    ],
)
def test_bad_search_settings_stop_before_any_training(
    override: str, key: str, cli, tmp_path: Path
) -> None:
    code, out, err = cli(
        train_main,
        "-m",
        "hparams_search=synthetic_optuna",
        override,
        f"paths.output_root={tmp_path}",
        cwd=tmp_path,
    )
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith(f"seglab-train: error: {key}")
    assert not list(tmp_path.glob("**/.hydra"))
    assert not list(tmp_path.glob("**/study.db"))


PARETO = ["hparams_search=synthetic_pareto"]
#: The config groups both searches choose among, fixed: the command-line check composes one
#: variant of the search per option of a searched group (a quarter of a second each).
ONE_VARIANT = ["model/decoder=unet", "model/attention=none", "loss=ce"]


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (
            ["hparams_search=synthetic_optuna", "optimized_metric=[val/mIoU_best,model/gflops]"],
            "optimized_metric names 2 metrics (val/mIoU_best, model/gflops): set "
            "hydra.sweeper.directions",
        ),
        (
            ["hparams_search=synthetic_optuna", "hydra.sweeper.direction=up"],
            "hydra.sweeper.direction=up is neither maximize nor minimize",
        ),
        (
            [*PARETO, "hydra.sweeper.directions=[maximize]"],
            "hydra.sweeper.directions=[maximize] gives 1 directions for the 2 metrics",
        ),
        (
            [*PARETO, "hydra.sweeper.directions=[maximize,down]"],
            "hydra.sweeper.directions[1]=down is neither maximize nor minimize",
        ),
        (
            [*PARETO, "hydra.sweeper.pruner=median"],
            "hydra.sweeper.pruner=median cannot prune a search of 2 metrics",
        ),
        (
            [*PARETO, "hydra.sweeper.sampler=cmaes"],
            "hydra.sweeper.sampler=cmaes optimises one metric",
        ),
    ],
)
def test_bad_objectives_stop_before_any_training(
    args: list[str], key: str, cli, tmp_path: Path
) -> None:
    overrides = [*args, *ONE_VARIANT, f"paths.output_root={tmp_path}"]
    code, out, err = cli(train_main, "-m", *overrides, cwd=tmp_path)
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith(f"seglab-train: error: {key}")
    assert not list(tmp_path.glob("**/.hydra"))
    assert not list(tmp_path.glob("**/study.db"))


# opens a SQLite study: a few seconds
@pytest.mark.slow
def test_a_search_refuses_a_study_created_with_other_directions(cli, tmp_path: Path) -> None:
    study_dir = tmp_path / "train" / "hparams_search" / "synthetic_pareto"
    study_dir.mkdir(parents=True)
    optuna.create_study(study_name="synthetic_pareto", storage=_storage(study_dir))
    # every searched key fixed: no trial config to compose before the study is opened
    fixed = ["model.encoder.widths=[8]", "model.encoder.convs_per_stage=1", "model/decoder=unet"]
    args = [*PARETO, *fixed, "optimizer.lr=0.003", f"paths.output_root={tmp_path}"]
    code, out, err = cli(train_main, "-m", *args, cwd=tmp_path)
    assert code == 2
    (line,) = err.strip().splitlines()
    study = f"study synthetic_pareto in {_storage(study_dir)} was created to minimize"
    assert line.startswith(f"seglab-train: error: {study}"), line
    assert re.search(r"would maximize, minimize .*; name another hydra\.sweeper\.study_name$", line)
    assert not list(tmp_path.glob("**/.hydra"))


def test_the_cmaes_sampler_without_its_package_names_the_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hydra_plugins.seglab_optuna_sweeper.space import build_sampler

    space = {"optimizer.lr": FloatDistribution(1e-4, 1e-2, log=True)}
    if importlib.util.find_spec("cmaes") is not None:  # an optional package
        assert isinstance(build_sampler("cmaes", 0, 1, space), optuna.samplers.CmaEsSampler)
    monkeypatch.setitem(sys.modules, "cmaes", None)  # what an absent package imports as
    with pytest.raises(SweepError, match=r"sampler=cmaes needs the cmaes package: pip install"):
        build_sampler("cmaes", 0, 1, space)


@pytest.mark.slow
def test_a_two_objective_search_writes_its_pareto_front(tmp_path: Path, cli) -> None:
    """Encoders of one and of two stages: the larger model costs more FLOPs, so whichever
    scores better, each is on the front unless the other beats it in both."""
    code, out, err = _train_here(
        cli,
        *PARETO,
        "hydra.sweeper.sampler=grid",
        "model.encoder.widths=choice([8],[8,16])",
        "model.encoder.convs_per_stage=1",
        "model/decoder=unet",
        "optimizer.lr=0.003",
        "hydra.sweeper.n_trials=2",
        cwd=tmp_path,
    )
    assert code == 0, err[-3000:]
    study_dir = tmp_path / "train" / "hparams_search" / "synthetic_pareto"
    study = optuna.load_study(study_name="synthetic_pareto", storage=_storage(study_dir))
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["val/mIoU_best", "model/gflops"]
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    results = OmegaConf.to_container(OmegaConf.load(study_dir / "optimization_results.yaml"))
    assert results["metrics"] == ["val/mIoU_best", "model/gflops"]
    assert results["directions"] == ["maximize", "minimize"]
    front = sorted(study.best_trials, key=lambda trial: trial.number)
    assert front and results["pareto_front"] == [
        {
            "trial": trial.number,
            "params": trial.params,
            "values": {"val/mIoU_best": trial.values[0], "model/gflops": trial.values[1]},
        }
        for trial in front
    ]
    # each trial's values are the ones its run logged
    for trial, run_dir in zip(study.trials, _job_dirs(study_dir), strict=True):
        scalars = read_scalars(run_dir)
        assert trial.values[0] == pytest.approx(scalars["val/mIoU_best"][-1][1])
        assert trial.values[1] == pytest.approx(scalars["model/gflops"][-1][1])
        assert not trial.intermediate_values, "a multi-objective study takes no reports"
    gflops = {t.params["model.encoder.widths"]: t.values[1] for t in study.trials}
    assert gflops["[8,16]"] > gflops["[8]"]
    # the front, printed: a header, then a row per trial of it
    printed = (out + err).split("Pareto front of")[1].splitlines()[1:]
    assert printed[0].split() == ["trial", "model.encoder.widths", *results["metrics"]]
    for row, trial in zip(printed[1:], front, strict=False):
        assert row.split()[:2] == [str(trial.number), trial.params["model.encoder.widths"]]


@pytest.mark.slow
def test_hyperband_pruner_prunes_a_trial_behind_the_best_at_its_rung(tmp_path: Path, cli) -> None:
    """A finished trial of 2 epochs (so Hyperband has one bracket, promoting after epoch 1)
    with val/mIoU 1.0 at its rung, which no tiny run reaches: the next trial is pruned after
    epoch 1 of 3."""
    study_dir = tmp_path / STUDY
    study_dir.mkdir(parents=True)
    study = optuna.create_study(
        study_name="synthetic_optuna", storage=_storage(study_dir), direction="maximize"
    )
    finished = optuna.trial.create_trial(
        value=1.0,
        intermediate_values={0: 1.0, 1: 1.0},
        system_attrs={"completed_rung_0": 1.0},
    )
    study.add_trial(finished)
    code, _, err = _train_here(
        cli,
        "hparams_search=synthetic_optuna",
        "hydra.sweeper.n_trials=1",
        "hydra.sweeper.pruner=hyperband",
        # every searched key fixed
        "model/decoder=unet",
        "model/attention=none",
        "model.attention_at=bottleneck",
        "loss=ce",
        "optimizer.lr=0.003",
        "trainer.max_epochs=3",
        cwd=tmp_path,
    )
    assert code == 0, err[-3000:]
    trial = _trials(study_dir)[1]
    assert trial.state.name == "PRUNED"
    assert list(trial.intermediate_values) == [0, 1]
    (run_dir,) = _job_dirs(study_dir)
    assert OmegaConf.load(run_dir / "pruned.yaml").epoch == 1
    assert len(read_scalars(run_dir)["val/mIoU"]) == 2


def test_the_search_space_maps_each_kind_of_value_to_its_distribution() -> None:
    space, fixed = parse_space(
        {
            "a": "choice(unet, fpn)",
            "b": "range(2, 9, 3)",
            "c": "interval(0, 1)",
            "d": "tag(log, interval(1e-4, 1e-2))",
            "e": "int(interval(1, 10))",
            "f": "3",
        },
        ["model/decoder=fpn", "a=choice(x, y, z)", "+g=1"],
    )
    assert space == {
        "a": CategoricalDistribution(["x", "y", "z"]),
        "b": IntDistribution(2, 8, step=3),
        "c": FloatDistribution(0.0, 1.0),
        "d": FloatDistribution(1e-4, 1e-2, log=True),
        "e": IntDistribution(1, 10),
    }
    assert fixed == ["f=3", "model/decoder=fpn", "+g=1"]
    # a sampled value reads back through Hydra's grammar as the same value and type
    parser = OverridesParser.create()
    for value in (0.1 + 0.2, 3, True, "unet", 1e-05):
        (parsed,) = parser.parse_overrides([f"k={override_value(value)}"])
        assert parsed.value() == value and type(parsed.value()) is type(value)


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
