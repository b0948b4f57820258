"""scripts/studies/holdout_check.py: its table pools each recipe's seeds into a mean and a spread of
both scores and their gap, and each result names the command that trained it."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest
import yaml

SCRIPT = Path(__file__).parents[1] / "scripts" / "studies" / "holdout_check.py"
NAMES = runpy.run_path(str(SCRIPT))


def _result(name: str, val: float, heldout: float, pole: float, seed: int = 42) -> dict:
    return {
        "name": name,
        "seed": seed,
        "train": (
            f"seglab-train experiment=camvid_cpu data.splits.fold_seed={seed} {name} seed={seed}"
        ),
        "eval": [],
        "val": {"mIoU": val, "IoU": {"Sky": 0.9, "Pole": pole}},
        "heldout": {"mIoU": heldout, "IoU": {"Sky": 0.8, "Pole": pole / 2}},
        "steps": 1000 + seed,
        "images_per_s": 10.0,
    }


def test_the_table_gives_each_recipe_its_seeds_mean_spread_and_gap() -> None:
    results = [
        _result("baseline", 0.50, 0.40, 0.1),
        _result("baseline", 0.52, 0.44, 0.3, seed=2),
        _result("ema", 0.55, 0.53, 0.2),
    ]
    results[2]["eval"] = ["inference.tta.hflip=true"]
    lines = NAMES["table"](results, per_class="baseline").splitlines()
    assert lines[2].startswith(
        "| baseline | 2 | 0.510 ± 0.014 | 0.420 ± 0.028 | 0.090 ± 0.014 | 1022 | 10.0 |"
    )
    # one command runs every seed of the recipe; other keys that end in seed stay as they were
    assert lines[2].endswith(
        "| `seglab-train -m experiment=camvid_cpu data.splits.fold_seed=42 baseline seed=42,2` |"
    )
    assert lines[3].startswith("| ema | 1 | 0.550 | 0.530 | 0.020 | 1042 | 10.0 |")
    assert "`seglab-train experiment=camvid_cpu data.splits.fold_seed=42 ema seed=42`" in lines[3]
    assert lines[3].endswith("; scored with `inference.tta.hflip=true` |")
    assert "| Pole | 0.200 ± 0.141 | 0.100 ± 0.071 |" in lines


def test_a_result_names_the_command_of_its_run_without_where_it_was_written(
    tmp_path: Path,
) -> None:
    (tmp_path / ".hydra").mkdir()
    overrides = [
        "experiment=camvid_cpu",
        "data.splits.holdout=0006R0",
        "paths.output_root=/x",
        "seed=7",
    ]
    (tmp_path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    assert NAMES["train_command"](tmp_path) == (
        "seglab-train experiment=camvid_cpu data.splits.holdout=0006R0 seed=7"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["base", "--reuse", "{tmp}", "callbacks=ema"], "give --eval overrides"),
        (["base", "--reuse", "{tmp}"], "no checkpoints/last.ckpt there"),
        (["--table", "--results", "{tmp}/none.jsonl"], "no such file"),
    ],
)
def test_bad_arguments_stop_before_any_run(
    args: list[str], message: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    argv = [SCRIPT.name, *(arg.replace("{tmp}", str(tmp_path)) for arg in args)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as stop:
        NAMES["main"]()
    assert message in str(stop.value.code) + capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
