"""What ``seglab-data stats`` computes: the class statistics of one split of a data config and
the raw mask values its label map does not cover, written to the command's directory as
``class_stats.json``."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from seglab.config.spec import resolve_spec
from seglab.data import DatasetError
from seglab.data.label_map import UncoveredValues
from seglab.data.stats import ClassStatistics, class_statistics
from seglab.errors import SeglabError
from seglab.workflows.build import build_datamodule


def split_statistics(cfg: DictConfig) -> tuple[ClassStatistics, int, Path, UncoveredValues]:
    """The statistics of ``cfg.split``, its image count, the JSON file they were written to and
    the raw values the label map leaves out; those count as void here, where training refuses
    them, so that one run of the command lists every one of them."""
    datamodule = build_datamodule(resolve_spec(cfg))
    reason = datamodule.split_unavailable(cfg.split)
    if reason is not None:
        raise SeglabError(reason)
    try:
        class_pixels, image_pixels, uncovered = datamodule.survey(cfg.split)
        statistics = class_statistics(datamodule.classes, class_pixels, image_pixels)
    except (DatasetError, ValueError) as error:
        raise SeglabError(str(error)) from None
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "class_stats.json"
    record = {**statistics.to_dict(), "uncovered": uncovered.rows()}
    path.write_text(json.dumps(record, indent=2) + "\n")
    return statistics, len(class_pixels), path, uncovered
