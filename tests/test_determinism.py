"""A seeded run with ``trainer.deterministic=true`` repeats every logged scalar to the last digit.

Each run is trained twice, once in a fresh interpreter and once inside this one, and every
scalar tag of the two (train, val and test alike, step for step) must be equal as floats, not
merely close: the README promises a re-run that logs the same numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tiny import TINY, run_module, save_pair

from seglab.cli.train import main as train_main
from seglab.runs.directories import read_scalars

DETERMINISTIC = ["trainer.deterministic=true", "seed=11"]
FOLDER_CLASSES = ["background", "square", "bar"]


def _write_folder_dataset(root: Path) -> None:
    """Small RGB images of squares and bars on a noisy background, with their class masks."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("val", 4), ("test", 2)):
        for index in range(count):
            height, width = rng.integers(36, 52, size=2)
            mask = np.zeros((height, width), np.uint8)
            top, left = rng.integers(2, 14, size=2)
            mask[top : top + 14, left : left + 14] = 1
            mask[-10:-4, 4:-4] = 2
            image = rng.integers(0, 60, size=(height, width, 3)).astype(np.uint8)
            image[mask == 1] += np.array([180, 40, 20], np.uint8)
            image[mask == 2] += np.array([20, 60, 180], np.uint8)
            save_pair(root, split, f"{split}{index}", image, mask)


def _train_twice(args: list[str], root: Path, cli) -> tuple[dict, dict]:
    """The scalars of ``args`` trained in a fresh interpreter and again in this process."""
    first, second = root / "first", root / "second"
    result = run_module("seglab.cli.train", *args, f"paths.output_root={first}", cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    code, _, err = cli(
        train_main,
        *args,
        f"paths.output_root={second}",
        cwd=root,
    )
    assert code == 0, err[-3000:]
    ((first_run,), (second_run,)) = (list((r / "train").iterdir()) for r in (first, second))
    return read_scalars(first_run), read_scalars(second_run)


def _assert_identical(first: dict, second: dict) -> None:
    for stage in ("train/", "val/", "test/"):
        assert any(tag.startswith(stage) for tag in first), f"no {stage}* scalar was logged"
    assert sorted(first) == sorted(second)
    differing = {tag: (first[tag], second[tag]) for tag in first if first[tag] != second[tag]}
    assert not differing, f"scalars that differ between the runs: {differing}"


@pytest.mark.slow
def test_synthetic_run_repeats_every_scalar(tmp_path: Path, cli) -> None:
    first, second = _train_twice([*TINY, *DETERMINISTIC], tmp_path, cli)
    assert len(first["train/loss"]) == 8 and len(first["val/mIoU"]) == 2
    _assert_identical(first, second)


@pytest.mark.slow
def test_folder_run_with_random_scale_and_crop_in_two_workers_repeats_every_scalar(
    tmp_path: Path, cli
) -> None:
    data = tmp_path / "data"
    _write_folder_dataset(data)
    args = [
        "data=folder",
        f"data.root={data}",
        f"data.classes=[{','.join(FOLDER_CLASSES)}]",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "data.augment.scale_range=[0.6,1.4]",
        "data.augment.crop_size=[32,32]",
        "data.loader.num_workers=2",
        "data.loader.batch_size=4",
        "data.loader.eval_batch_size=4",
        "model.encoder.widths=[8,16,32]",
        "trainer.max_epochs=2",
        "trainer.log_every_n_steps=1",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        *DETERMINISTIC,
    ]
    first, second = _train_twice(args, tmp_path, cli)
    assert len(first["train/loss"]) == 4 and len(first["test/mIoU"]) == 1
    _assert_identical(first, second)
