"""``logger=tensorboard_mlflow``: a run recorded in MLflow's SQLite store beside TensorBoard,
read back through MLflow's own client."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from tiny import TINY, run_module, train_once

from seglab.cli.train import main as train_main
from seglab.runs.directories import event_dir, read_hparams, read_scalars
from seglab.sweeps.mlflow_logging import default_experiment, sqlite_uri


def _client(root: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{root}/mlflow.db")


def _only_run(root: Path, experiment: str = "train"):
    client = _client(root)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, [e.name for e in client.search_experiments()]
    (run,) = client.search_runs([found.experiment_id])
    return client, run


@pytest.fixture(scope="module")
def mlflow_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The output root and run directory of one tiny run logged to TensorBoard and MLflow."""
    root = tmp_path_factory.mktemp("runs")
    return root, train_once(root, *TINY, "logger=tensorboard_mlflow")


@pytest.mark.slow
def test_run_is_named_and_tagged_by_its_directory_and_best_checkpoint(
    mlflow_run: tuple[Path, Path],
) -> None:
    root, run_dir = mlflow_run
    _, run = _only_run(root)
    assert run.info.run_name == run_dir.name
    assert run.info.status == "FINISHED"
    assert run.data.tags["run_dir"] == str(run_dir.resolve())
    assert run.data.tags["best_checkpoint"] == str(run_dir.resolve() / "checkpoints" / "best.ckpt")
    # TensorBoard still gets its event files, in the run directory itself
    assert event_dir(run_dir) == run_dir


@pytest.mark.slow
def test_params_are_the_settings_the_hparams_tab_compares(mlflow_run: tuple[Path, Path]) -> None:
    root, run_dir = mlflow_run
    _, run = _only_run(root)
    params = run.data.params
    assert set(params) == set(read_hparams(run_dir))
    assert params["optimizer.lr"] == "0.003"
    assert params["data.image_size"] == "32"
    assert params["model/decoder"] == "unet"


@pytest.mark.slow
def test_metrics_are_tensorboards_scalars_under_the_same_names(
    mlflow_run: tuple[Path, Path],
) -> None:
    root, run_dir = mlflow_run
    client, run = _only_run(root)
    scalars = read_scalars(run_dir)
    assert set(run.data.metrics) == set(scalars)
    history = client.get_metric_history(run.info.run_id, "val/mIoU")
    assert [(m.step, m.value) for m in history] == [
        (step, pytest.approx(value)) for step, value in scalars["val/mIoU"]
    ]
    assert len(history) == 2, "one point per epoch"
    assert run.data.metrics["test/mIoU"] == pytest.approx(scalars["test/mIoU"][-1][1])


@pytest.mark.slow
def test_a_resumed_run_continues_its_mlflow_run(tmp_path: Path) -> None:
    one_epoch = [arg for arg in TINY if not arg.startswith("trainer.max_epochs")]
    run_dir = train_once(tmp_path, *one_epoch, "trainer.max_epochs=1", "logger=tensorboard_mlflow")
    result = run_module(
        "seglab.cli.train", f"resume={run_dir}", "trainer.max_epochs=2", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client, run = _only_run(tmp_path)
    assert run.info.run_name == run_dir.name
    assert len(client.get_metric_history(run.info.run_id, "val/mIoU")) == 2
    # MLflow never changes a param: the run keeps the value it started with
    assert run.data.params["trainer.max_epochs"] == "1"


def test_the_store_is_one_sqlite_file_under_the_absolute_output_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert sqlite_uri("outputs") == f"sqlite:///{tmp_path.resolve()}/outputs/mlflow.db"


def test_runs_are_grouped_by_the_folder_holding_them() -> None:
    assert default_experiment("/o/train/2025-01-01_10-00-00-000001", "/o") == "train"
    sweep_job = "/o/train/multirun/2025-01-01_10-00-00-000001/lr=0.1"
    assert default_experiment(sweep_job, "/o") == "train/multirun/2025-01-01_10-00-00-000001"
    assert default_experiment("/elsewhere/mine/run", "/o") == "mine"


# builds the data and model first: seconds
@pytest.mark.slow
def test_without_mlflow_the_run_stops_before_training_naming_the_extra(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now fails
    code, _, err = cli(
        train_main,
        *TINY,
        "logger=tensorboard_mlflow",
        f"paths.output_root={tmp_path}",
        cwd=tmp_path,
    )
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert re.fullmatch(
        r"seglab-train: error: logger\.mlflow needs mlflow: pip install 'seglab\[mlflow\]'", last
    )
    assert not list(tmp_path.glob("train/*/checkpoints"))
