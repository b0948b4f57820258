"""Recording runs in MLflow beside TensorBoard (``logger=tensorboard_mlflow``).

Lightning's MLFlowLogger receives the same scalars as TensorBoard, under the same names
(``val/mIoU``, ``train/loss``...). This module tells it where the store is (one SQLite file under
``paths.output_root``), what the experiment and the run are called, and adds what TensorBoard
gets from `seglab.engine.callbacks.RunSummary` and the run directory: the settings the HPARAMS tab
compares, as params, and the run's directory and best checkpoint, as tags.

mlflow is an optional dependency (``seglab[mlflow]``): nothing here imports it, Lightning's
logger does when a run logs to it.
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.loggers import MLFlowLogger

from seglab.engine.callbacks import hparam_values
from seglab.extras import require
from seglab.runs.directories import group_choices

#: The tag holding a run's directory (absolute), which also finds the run again on a resume.
RUN_DIR_TAG = "run_dir"
#: The tag holding the run's best checkpoint (absolute), set when fitting ends.
BEST_CHECKPOINT_TAG = "best_checkpoint"
#: The store's file in ``paths.output_root``.
STORE_FILE = "mlflow.db"


def require_mlflow(key: str) -> None:
    """Refuse a logger node that logs to MLflow when mlflow is not installed, before training."""
    require("mlflow", key)


def sqlite_uri(output_root: str | Path) -> str:
    """``sqlite:///<output_root>/mlflow.db`` with ``output_root`` made absolute, so that every
    run under ``output_root`` shares one store wherever seglab is launched from."""
    return f"sqlite:///{Path(output_root).expanduser().resolve() / STORE_FILE}"


def default_experiment(run_dir: str | Path, output_root: str | Path) -> str:
    """The folder holding ``run_dir``, relative to ``output_root``: ``train`` for the single runs
    of seglab-train, ``train/multirun/<time>`` for the jobs of one sweep, the runs that
    ``tensorboard --logdir <that folder>`` compares; a run directory outside ``output_root`` by
    its folder's name."""
    parent = Path(run_dir).expanduser().resolve().parent
    try:
        return parent.relative_to(Path(output_root).expanduser().resolve()).as_posix()
    except ValueError:
        return parent.name


class MLflowRunLogger(MLFlowLogger):
    """Lightning's MLflow logger for one seglab run, named as its TensorBoard run is.

    A run directory that has an MLflow run already (a resumed run) continues that run: the
    metrics it logs again from the checkpoint's step on are added beside the first ones, since
    MLflow keeps every logged value.

    Args:
        run_dir: the run's directory; its name is the MLflow run's name (the name TensorBoard
            gives the run), its absolute path the ``run_dir`` tag.
        output_root: the folder all runs are written under (``paths.output_root``); the
            default store and experiment are found from it.
        experiment_name: the MLflow experiment the run belongs to; None: `default_experiment`.
        tracking_uri: the MLflow store, any URI MLflow takes (``http://host:5000``...); None:
            ``sqlite:///<output_root>/mlflow.db`` (`sqlite_uri`).
    """

    def __init__(
        self,
        run_dir: str,
        output_root: str,
        experiment_name: str | None = None,
        tracking_uri: str | None = None,
    ) -> None:
        directory = Path(run_dir).expanduser().resolve()
        experiment = experiment_name or default_experiment(directory, output_root)
        uri = tracking_uri or sqlite_uri(output_root)
        super().__init__(
            experiment_name=experiment,
            run_name=directory.name,
            tracking_uri=uri,
            tags={RUN_DIR_TAG: str(directory)},
            run_id=_existing_run(uri, experiment, directory),
        )


def _existing_run(uri: str, experiment_name: str, run_dir: Path) -> str | None:
    """The id of the MLflow run of ``run_dir`` in the experiment, if it has one."""
    if "'" in str(run_dir):  # MLflow's filter strings cannot quote it
        return None
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.{RUN_DIR_TAG} = '{run_dir}'",
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


class MLflowRecord(pl.Callback):
    """Gives a run's MLflow record what Lightning's logger does not: the settings TensorBoard's
    HPARAMS tab compares (`hparam_values`), as params, once fitting starts, and the best
    checkpoint, as a tag, once it ends.

    MLflow refuses to change a param: a resumed run keeps the values it started with (its
    ``.hydra/resume-<time>/`` holds the resume's overrides) and adds only new settings.
    """

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loggers = _mlflow_loggers(trainer)
        if not loggers:
            return
        config = getattr(pl_module, "config", None) or {}
        run_dir = (config.get("paths") or {}).get("output_dir")
        params = hparam_values(config, group_choices(run_dir) if run_dir else {})
        for logger in loggers:
            recorded = logger.experiment.get_run(logger.run_id).data.params
            logger.log_hyperparams({k: v for k, v in params.items() if k not in recorded})

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # the checkpoint callback that ranks by a metric (the other one keeps last.ckpt)
        ranking = [c for c in trainer.checkpoint_callbacks if getattr(c, "monitor", None)]
        best = ranking[0].best_model_path if ranking else ""
        if not best:
            return
        for logger in _mlflow_loggers(trainer):
            logger.experiment.set_tag(logger.run_id, BEST_CHECKPOINT_TAG, str(Path(best).resolve()))


def _mlflow_loggers(trainer: pl.Trainer) -> list[MLFlowLogger]:
    """The trainer's MLflow loggers, on the main process only."""
    if not trainer.is_global_zero:
        return []
    return [logger for logger in trainer.loggers if isinstance(logger, MLFlowLogger)]
