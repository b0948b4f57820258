"""Reading finished runs back from their directories, through TensorBoard's own event reader."""

from __future__ import annotations

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

# keep every point: the defaults subsample long scalar series and keep only a few images
_SIZE_GUIDANCE = {"scalars": 0, "images": 0, "tensors": 0}


def load_events(run_dir: str | Path) -> EventAccumulator:
    """All events a run wrote under ``<run_dir>/tensorboard``."""
    log_dir = Path(run_dir) / "tensorboard"
    if not any(log_dir.glob("events.out.tfevents.*")):
        raise FileNotFoundError(f"{log_dir} holds no TensorBoard event file")
    return EventAccumulator(str(log_dir), size_guidance=_SIZE_GUIDANCE).Reload()


def read_scalars(run_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag of a run as ``(step, value)`` points in logging order."""
    events = load_events(run_dir)
    return {
        tag: [(event.step, event.value) for event in events.Scalars(tag)]
        for tag in events.Tags()["scalars"]
    }


def read_hparams(run_dir: str | Path) -> tuple[dict[str, object], list[str]]:
    """The config values and metric names a run registered in TensorBoard's HPARAMS tab."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    params: dict[str, object] = {}
    metrics: list[str] = []
    for content in load_events(run_dir).PluginTagToContent("hparams").values():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        if data.HasField("experiment"):
            metrics = [info.name.tag for info in data.experiment.metric_infos]
        elif data.HasField("session_start_info"):
            for name, value in data.session_start_info.hparams.items():
                params[name] = getattr(value, value.WhichOneof("kind"))
    return params, metrics
