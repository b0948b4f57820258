"""scripts/benchmarks/model_table.py on a tiny setting: it composes, measures and writes the
table."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "scripts" / "benchmarks" / "model_table.py"


def test_model_table_writes_a_row_per_combination(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "models.md"
    monkeypatch.setattr(
        sys,
        "argv",
        [
            str(SCRIPT),
            "--size",
            "64",
            "--repeats",
            "1",
            "--encoders",
            "conv",
            "resnet18",
            "--decoders",
            "unet",
            "segnet",
            "--skip-attention",
            "--output",
            str(output),
        ],
    )
    runpy.run_path(str(SCRIPT), run_name="__main__")
    rows = [line for line in output.read_text().splitlines() if line.startswith("| conv")]
    assert len(rows) == 2 and all(len(row.split("|")) == 7 for row in rows)
    assert "resnet18 | segnet | cannot be built: SegNetDecoder unpools" in output.read_text()
    assert "Made by `python scripts/benchmarks/model_table.py --size 64" in output.read_text()
