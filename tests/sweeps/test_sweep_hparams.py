"""The HPARAMS experiment a sweep writes when it ends, on hand-written runs."""

from __future__ import annotations

from pathlib import Path

from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams.summary_v2 import hparams_pb
from torch.utils.tensorboard import SummaryWriter

from seglab.runs.directories import EVENT_FILES, load_events
from seglab.sweeps.hparams import HEADLINE_METRICS, SUFFIX, sweep_experiment, write_sweep_experiment


def _run(path: Path, hparams: dict[str, object], scalars: dict[str, float]) -> Path:
    writer = SummaryWriter(str(path))
    writer._get_file_writer().add_summary(hparams_pb(hparams, trial_id=path.name))
    for tag, value in scalars.items():
        writer.add_scalar(tag, value, 0)
    writer.close()
    return path


def _sweep(root: Path) -> list[Path]:
    scalars = {"epoch": 1.0, "train/loss": 0.5, "val/mIoU_best": 0.4, "test/mIoU": 0.3}
    return [
        _run(
            root / "lr=0.001,attention=none",
            {"lr": 0.001, "attention": "none", "tta": False},
            scalars,
        ),
        _run(
            root / "lr=0.001,attention=scse",
            {"lr": 0.001, "attention": "scse", "tta": True, "reduction": 16},
            scalars,
        ),
        _run(root / "plain", {}, {"other/tag": 1.0}),
    ]


def test_only_the_settings_that_differ_are_listed_and_the_headline_metrics_come_first(
    tmp_path: Path,
) -> None:
    experiment = sweep_experiment(_sweep(tmp_path))
    infos = {info.name: info for info in experiment.hparam_infos}
    # lr has the same value in every run, and reduction is a setting only one run has: neither
    # takes one of the five setting columns TensorBoard shows
    assert sorted(infos) == ["attention", "tta"]
    assert infos["attention"].differs and infos["tta"].differs
    assert infos["tta"].type == api_pb2.DATA_TYPE_BOOL
    assert [value.bool_value for value in infos["tta"].domain_discrete.values] == [False, True]
    assert infos["attention"].type == api_pb2.DATA_TYPE_STRING
    assert [v.string_value for v in infos["attention"].domain_discrete.values] == ["none", "scse"]
    tags = [info.name.tag for info in experiment.metric_infos]
    # the headline metrics the runs logged, in HEADLINE_METRICS' order, then the rest by name;
    # a run without a session (no settings) adds none
    headline = [tag for tag in HEADLINE_METRICS if tag in ("val/mIoU_best", "test/mIoU")]
    assert tags == [*headline, "epoch", "train/loss"]


def test_where_no_setting_differs_every_setting_is_listed(tmp_path: Path) -> None:
    runs = [
        _run(tmp_path / name, {"lr": 0.001, "attention": "none"}, {"val/mIoU_best": 0.4})
        for name in ("seed=1", "seed=2")
    ]
    experiment = sweep_experiment(runs)
    infos = {info.name: info for info in experiment.hparam_infos}
    assert sorted(infos) == ["attention", "lr"] and not any(i.differs for i in infos.values())
    assert infos["lr"].type == api_pb2.DATA_TYPE_FLOAT64


def test_the_experiment_is_written_once_into_the_first_run(tmp_path: Path) -> None:
    runs = _sweep(tmp_path)
    first = write_sweep_experiment(tmp_path)
    assert first is not None and first.parent == runs[0] and first.name.endswith(SUFFIX)
    # written again (a sweep continued), it replaces the earlier one rather than adding one
    second = write_sweep_experiment(tmp_path)
    assert sorted(path.name for path in tmp_path.rglob(EVENT_FILES + SUFFIX)) == [second.name]
    content = load_events(runs[0]).PluginTagToContent("hparams")
    assert "_hparams_/experiment" in content and "_hparams_/session_start_info" in content
    assert write_sweep_experiment(tmp_path / "plain") is None, "no session, no experiment"
