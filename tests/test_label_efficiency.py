"""scripts/studies/label_efficiency.py: every row of its grid composes onto
experiment=camvid_cpu and builds its training method, and its table shows each row's result
beside its command."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
from hydra.utils import instantiate

from seglab.methods import FixMatch, MeanTeacher, Supervised

SCRIPT = Path(__file__).parents[1] / "scripts" / "studies" / "label_efficiency.py"
SCRIPT_NAMES = runpy.run_path(str(SCRIPT))
ROWS = SCRIPT_NAMES["ROWS"]
METHODS = {"supervised": Supervised, "fixmatch": FixMatch, "mean_teacher": MeanTeacher}


@pytest.mark.parametrize("row", ROWS, ids=lambda row: f"{row.labels}-{row.method}")
def test_every_row_is_camvid_cpu_with_its_labels_and_method(compose, tmp_path: Path, row) -> None:
    arguments = SCRIPT_NAMES["command"](row, [])
    assert arguments[0] == "experiment=camvid_cpu"
    cfg = compose("train", *arguments, f"paths.output_dir={tmp_path}")
    method = instantiate(cfg.method)
    assert type(method) is METHODS[row.method]
    fraction = cfg.data.few_labels.labeled_fraction
    if row.labels.startswith("1/"):
        assert fraction == {"1/8": 0.125, "1/4": 0.25}[row.labels.split()[0]]
    else:
        assert fraction is None
    sparse = cfg.data.few_labels.sparse_labels
    assert sparse == next((kind for kind in ("scribbles", "points") if kind in row.labels), None)
    assert cfg.trainer.max_time == "00:00:10:00"


def test_the_grid_covers_each_share_with_each_method_and_each_kind_of_label() -> None:
    cells = {(row.labels.split()[0], row.method) for row in ROWS}
    for share in ("1/8", "1/4"):
        assert {(share, method) for method in METHODS} <= cells
    kinds = [row.labels for row in ROWS if row.labels.startswith("all")]
    assert len(kinds) == 3 and len(ROWS) == 9


def test_the_table_puts_each_result_beside_the_command_reproducing_it() -> None:
    rows = ROWS[:2]
    lines = SCRIPT_NAMES["table"](
        rows, ["0.412 (step 338 of 1250)", "failed (exit code 2)"], ["data.root=/d"]
    )
    assert lines[2] == (
        "| 1/8 of the train split | supervised | 0.412 (step 338 of 1250) | "
        "`seglab-train "
        "experiment=camvid_cpu data.few_labels.labeled_fraction=0.125 data.root=/d` |"
    )
    assert lines[3].startswith("| 1/8 of the train split | fixmatch | failed (exit code 2) |")
    assert "method=fixmatch method.unlabeled_batch_size=4" in lines[3]
