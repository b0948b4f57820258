"""What ``seglab-data stats`` computes: the class statistics of one split of a data config,
written to the command's directory as ``class_stats.json``."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from seglab.config.spec import resolve_spec
from seglab.data import DatasetError
from seglab.data.stats import ClassStatistics, class_statistics
from seglab.errors import SeglabError
from seglab.workflows.build import build_datamodule


def split_statistics(cfg: DictConfig) -> tuple[ClassStatistics, int, Path]:
    """The statistics of ``cfg.split``, its image count and the JSON file they were written to."""
    datamodule = build_datamodule(resolve_spec(cfg))
    reason = datamodule.split_unavailable(cfg.split)
    if reason is not None:
        raise SeglabError(reason)
    try:
        class_pixels, image_pixels = datamodule.class_pixel_counts(cfg.split)
        statistics = class_statistics(datamodule.classes, class_pixels, image_pixels)
    except (DatasetError, ValueError) as error:
        raise SeglabError(str(error)) from None
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "class_stats.json"
    path.write_text(json.dumps(statistics.to_dict(), indent=2) + "\n")
    return statistics, len(class_pixels), path
