"""Run directories: each run gets its own, and no run writes into another's."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import hydra.core.utils
import pytest

from seglab.cli.data import main as data_stats_main
from seglab.cli.train import main as train_main
from seglab.runs.directories import claim_run_dir


def test_a_taken_name_gets_the_next_free_suffix(tmp_path: Path) -> None:
    wanted = str(tmp_path / "train" / "2030-01-01_00-00-00-000000")
    Path(wanted).mkdir(parents=True)
    Path(f"{wanted}-1").mkdir()
    assert claim_run_dir(wanted) == f"{wanted}-2"
    assert Path(f"{wanted}-2").is_dir()
    assert claim_run_dir(wanted) == f"{wanted}-3"


class _FrozenClock(datetime):
    """Every run starts at the same microsecond."""

    @classmethod
    def now(cls, tz=None) -> datetime:
        return cls(2030, 1, 1, 12, 0, 0, 123456)


def test_runs_started_at_the_same_time_get_their_own_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    monkeypatch.setattr(hydra.core.utils, "datetime", _FrozenClock)
    for _ in range(2):
        code, _, err = cli(
            data_stats_main,
            "stats",
            "data.num_train=8",
            f"paths.output_root={tmp_path}",
            cwd=tmp_path,
        )
        assert code == 0, err[-2000:]
    # and no directory claimed on the way and left empty
    runs = sorted(path.name for path in (tmp_path / "data_stats").iterdir())
    assert runs == ["2030-01-01_12-00-00-123456", "2030-01-01_12-00-00-123456-1"]
    for name in runs:
        run_dir = tmp_path / "data_stats" / name
        assert (run_dir / "class_stats.json").is_file() and (run_dir / ".hydra").is_dir()


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes() for path in root.rglob("*") if path.is_file()
    }


def test_a_run_never_writes_into_another_runs_directory(tmp_path: Path, cli) -> None:
    run_dir = tmp_path / "train" / "earlier"
    for name, text in (
        (".hydra/config.yaml", "seed: 1\n"),
        (".hydra/hydra.yaml", "hydra: {}\n"),
        (".hydra/overrides.yaml", "[]\n"),
        ("checkpoints/last.ckpt", "not read"),
    ):
        (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / name).write_text(text)
    before = _tree(run_dir)
    code, _, err = cli(train_main, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert code == 2
    (line,) = err.strip().splitlines()
    held = f"run directory {run_dir} already holds .hydra, checkpoints of another run"
    assert line.startswith(f"seglab-train: error: {held}"), line
    assert re.search(r"choose a new hydra\.run\.dir .*ckpt_path=<run>/checkpoints/last\.ckpt", line)
    assert _tree(run_dir) == before, "Hydra wrote nothing into it either"


def test_runs_recorded_with_a_tensorboard_folder_are_still_read(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    from seglab.runs.directories import read_scalars
    from seglab.runs.records import find_runs

    run = tmp_path / "train" / "old"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("seed: 1\n")
    with SummaryWriter(run / "tensorboard") as writer:
        writer.add_scalar("val/mIoU", 0.5, 3)
    assert find_runs(tmp_path) == [run]
    assert read_scalars(run) == {"val/mIoU": [(3, 0.5)]}
