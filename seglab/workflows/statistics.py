"""What ``seglab-data stats`` computes: the class statistics of one split of a data config and
the raw mask values its label map does not cover, written to the command's directory as
``class_stats.json``, and the per-channel mean and standard deviation of its images beside
them, as ``image_stats.json``."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import NamedTuple

from omegaconf import DictConfig, open_dict

from seglab.config.spec import resolve_spec
from seglab.data import DatasetError
from seglab.data.label_map import UncoveredValues
from seglab.data.stats import (
    ChannelStatistics,
    ClassStatistics,
    channel_statistics,
    class_statistics,
)
from seglab.errors import SeglabError
from seglab.workflows.build import build_datamodule


class DatasetStatistics(NamedTuple):
    """What ``seglab-data stats`` found in one split, and the files it wrote."""

    classes: ClassStatistics
    images: int
    #: the raw mask values the label map leaves out (void in ``classes``; training refuses them)
    uncovered: UncoveredValues
    #: the files ``classes`` (with ``uncovered``) was written to
    class_file: Path
    channels: ChannelStatistics
    channel_file: Path


def dataset_statistics(cfg: DictConfig) -> DatasetStatistics:
    """The class statistics of ``cfg.split`` with the raw values the label map leaves out,
    written to ``class_stats.json``, and the per-channel mean and std of its images (what
    ``data.mean`` and ``data.std`` normalise with), written to ``image_stats.json``.

    The datamodule reads the images unnormalised (``data.mean`` 0 and ``data.std`` 1 per
    channel, whatever the config says: they are what the command computes, and a dataset of
    new bands has none yet). Uncovered raw values count as void here, so that one run of the
    command lists every one of them.
    """
    data = copy.deepcopy(cfg)
    channels = int(data.data.get("in_channels", 3))
    with open_dict(data):
        data.data.mean, data.data.std = [0.0] * channels, [1.0] * channels
    datamodule = build_datamodule(resolve_spec(data))
    reason = datamodule.split_unavailable(cfg.split)
    if reason is not None:
        raise SeglabError(reason)
    try:
        class_pixels, image_pixels, uncovered = datamodule.survey(cfg.split)
        classes = class_statistics(datamodule.classes, class_pixels, image_pixels)
        bands = channel_statistics(datamodule.unnormalised_images(cfg.split))
    except (DatasetError, ValueError) as error:
        raise SeglabError(str(error)) from None
    reader = datamodule.image_reader
    image_record = {
        "split": str(cfg.split),
        "in_channels": reader.in_channels,
        "max_value": reader.max_value,
        **bands.to_dict(),
    }
    return DatasetStatistics(
        classes=classes,
        images=len(class_pixels),
        uncovered=uncovered,
        class_file=_write(
            cfg, "class_stats.json", {**classes.to_dict(), "uncovered": uncovered.rows()}
        ),
        channels=bands,
        channel_file=_write(cfg, "image_stats.json", image_record),
    )


def _write(cfg: DictConfig, name: str, content: dict) -> Path:
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / name
    path.write_text(json.dumps(content, indent=2) + "\n")
    return path
