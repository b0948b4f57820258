"""What ``seglab-data stats`` computes: the class statistics of one split of a data config and
the raw mask values its label map does not cover, written to the command's directory as
``class_stats.json``, and the per-channel mean and standard deviation of its images beside
them, as ``image_stats.json``."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from omegaconf import DictConfig, open_dict

from seglab.config.spec import resolve_spec
from seglab.data import DatasetError, SegmentationDataModule
from seglab.data.label_map import UncoveredValues
from seglab.data.stats import (
    ChannelStatistics,
    ClassStatistics,
    channel_statistics,
    class_statistics,
)
from seglab.errors import SeglabError
from seglab.workflows.build import build_datamodule


def stats_datamodule(cfg: DictConfig) -> SegmentationDataModule:
    """The datamodule of ``cfg``, reading images unnormalised (``data.mean`` 0 and
    ``data.std`` 1 per channel, whatever the config says: they are what the command computes,
    and a dataset of new bands has none yet); refused when ``cfg.split`` cannot be read."""
    cfg = copy.deepcopy(cfg)
    channels = int(cfg.data.get("in_channels", 3))
    with open_dict(cfg):
        cfg.data.mean, cfg.data.std = [0.0] * channels, [1.0] * channels
    datamodule = build_datamodule(resolve_spec(cfg))
    reason = datamodule.split_unavailable(cfg.split)
    if reason is not None:
        raise SeglabError(reason)
    return datamodule


def _write(cfg: DictConfig, name: str, content: dict) -> Path:
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / name
    path.write_text(json.dumps(content, indent=2) + "\n")
    return path


def split_statistics(
    cfg: DictConfig, datamodule: SegmentationDataModule | None = None
) -> tuple[ClassStatistics, int, Path, UncoveredValues]:
    """The statistics of ``cfg.split``, its image count, the JSON file they were written to and
    the raw values the label map leaves out; those count as void here, where training refuses
    them, so that one run of the command lists every one of them."""
    datamodule = stats_datamodule(cfg) if datamodule is None else datamodule
    try:
        class_pixels, image_pixels, uncovered = datamodule.survey(cfg.split)
        statistics = class_statistics(datamodule.classes, class_pixels, image_pixels)
    except (DatasetError, ValueError) as error:
        raise SeglabError(str(error)) from None
    record = {**statistics.to_dict(), "uncovered": uncovered.rows()}
    return statistics, len(class_pixels), _write(cfg, "class_stats.json", record), uncovered


def image_statistics(
    cfg: DictConfig, datamodule: SegmentationDataModule | None = None
) -> tuple[ChannelStatistics, Path]:
    """The per-channel mean and std of the images of ``cfg.split`` (what ``data.mean`` and
    ``data.std`` normalise with), and the JSON file they were written to."""
    datamodule = stats_datamodule(cfg) if datamodule is None else datamodule
    try:
        statistics = channel_statistics(datamodule.unnormalised_images(cfg.split))
    except (DatasetError, ValueError) as error:
        raise SeglabError(str(error)) from None
    reader = datamodule.image_reader
    content = {
        "split": str(cfg.split),
        "in_channels": reader.in_channels,
        "max_value": reader.max_value,
        **statistics.to_dict(),
    }
    return statistics, _write(cfg, "image_stats.json", content)
