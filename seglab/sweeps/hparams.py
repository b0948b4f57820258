"""The HPARAMS experiment of a sweep: one summary that orders TensorBoard's table.

Each run writes only its HPARAMS session (`seglab.engine.callbacks.RunSummary`). Without an
experiment summary TensorBoard builds one from every run below its logdir: the settings that
differ come first, but the metric columns are every scalar tag in name order and the table
shows the first five (``epoch``, ``model/...``, ``test/...``, ``train/...``), so the number a
sweep is judged by is a click away. When a sweep ends, `SweepExperiment` writes the one
experiment summary of its logdir into the first job's event directory (a run of its own would
be an empty entry in every run list): every setting of every job, those that differ marked so,
and the headline metrics first.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from seglab.runs.directories import EVENT_FILES, load_events, read_hparams

#: The HPARAMS table's first metric columns, in this order (those the jobs logged).
HEADLINE_METRICS = ("val/mIoU_best", "val/mDice_best", "val/loss", "test/mIoU")
#: The name ending of the event file that holds a sweep's experiment summary.
SUFFIX = ".seglab-experiment"


def sweep_experiment(run_dirs: Iterable[Path]) -> Any | None:
    """The ``Experiment`` proto of the runs that registered an HPARAMS session (None if none).

    A setting differs when two runs hold different values (one that only some runs have, such
    as an attention option's own settings, does not); strings and booleans list their values:
    all as TensorBoard's own builder does. Where some settings differ, only they are listed:
    TensorBoard shows the first five settings of the list, differing ones first, so a setting
    that every job shares would take a column from the metrics (the run's TEXT tab holds its
    whole config). Where none differs, every setting is listed.
    """
    from google.protobuf import struct_pb2
    from tensorboard.plugins.hparams import api_pb2

    sessions: list[dict[str, object]] = []
    tags: set[str] = set()
    for run_dir in run_dirs:
        events = load_events(run_dir)
        try:
            params = read_hparams(events)
        except KeyError:  # no HPARAMS data in this run
            continue
        if params:
            sessions.append(params)
            tags.update(events.Tags()["scalars"])
    if not sessions:
        return None
    infos = []
    for name in sorted({name for params in sessions for name in params}):
        values = [params[name] for params in sessions if name in params]
        info = api_pb2.HParamInfo(name=name, differs=len({repr(value) for value in values}) > 1)
        if all(isinstance(value, bool) for value in values):
            info.type = api_pb2.DATA_TYPE_BOOL
        elif all(isinstance(value, float | int) for value in values):
            info.type = api_pb2.DATA_TYPE_FLOAT64
        else:
            info.type = api_pb2.DATA_TYPE_STRING
        if info.type == api_pb2.DATA_TYPE_BOOL:
            domain = [struct_pb2.Value(bool_value=value) for value in sorted(set(values))]
        elif info.type == api_pb2.DATA_TYPE_STRING:
            strings = sorted({str(value) for value in values})
            domain = [struct_pb2.Value(string_value=value) for value in strings]
        else:
            domain = []
        if domain:
            info.domain_discrete.CopyFrom(struct_pb2.ListValue(values=domain))
        infos.append(info)
    if any(info.differs for info in infos):
        infos = [info for info in infos if info.differs]
    metrics = [tag for tag in HEADLINE_METRICS if tag in tags]
    metrics += sorted(tags - set(metrics))
    return api_pb2.Experiment(
        hparam_infos=infos,
        metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag)) for tag in metrics],
    )


def write_sweep_experiment(sweep_dir: str | Path) -> Path | None:
    """Writes the experiment of the runs below ``sweep_dir`` into the first one's event
    directory, replacing one written before; returns the file (None when no run has a
    session)."""
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2
    from torch.utils.tensorboard.writer import FileWriter

    run_dirs = sorted({path.parent for path in Path(sweep_dir).rglob(EVENT_FILES)})
    # TensorBoard's event reader reports every file it opens, at INFO, into the sweep's log
    quiet = logging.getLogger("tensorboard")
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        experiment = sweep_experiment(path for path in run_dirs if not _holds_experiment(path))
    finally:
        quiet.setLevel(level)
    if experiment is None:
        return None
    for path in run_dirs:
        for old in path.glob(EVENT_FILES + SUFFIX):
            old.unlink()
    target = run_dirs[0]
    summary = Summary()
    summary.value.add(
        tag=metadata.EXPERIMENT_TAG,
        metadata=metadata.create_summary_metadata(
            plugin_data_pb2.HParamsPluginData(experiment=experiment)
        ),
        tensor=metadata.NULL_TENSOR,
    )
    writer = FileWriter(str(target), filename_suffix=SUFFIX)
    writer.add_summary(summary)
    writer.close()
    (written,) = target.glob(EVENT_FILES + SUFFIX)
    return written


def _holds_experiment(path: Path) -> bool:
    """A folder whose only event files are experiment summaries is no run."""
    return all(name.name.endswith(SUFFIX) for name in path.glob(EVENT_FILES))


class SweepExperiment(Callback):
    """Writes a multirun's HPARAMS experiment when its last job has ended (conf/hydra), and
    says where the sweep went and which job did best."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = config.hydra.sweep.dir
        if not os.path.isdir(sweep_dir):
            return
        from seglab.quiet import quiet_event_reader
        from seglab.runs.summary import print_summary, sweep_summary

        ranking = config.get("callbacks", {}).get("model_checkpoint") or {}
        metric = ranking.get("monitor") or "val/mIoU"
        with quiet_event_reader():
            write_sweep_experiment(sweep_dir)
            lines = sweep_summary(sweep_dir, metric, ranking.get("mode") or "max")
        print_summary(lines)
