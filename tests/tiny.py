"""What test modules need at import time, so not fixtures: the conf dir (parametrisation walks
it), overrides for tiny seglab runs, ways to run the entry points in this process or in a fresh
interpreter, and the values a data config hands its datamodule."""

from __future__ import annotations

import copy
import functools
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import seglab.data  # noqa: F401  (registers the resolvers the data configs use)
from seglab.data import FolderDataModule
from seglab.runs.directories import read_scalars

#: the checkout's conf/, the one the entry points compose from an editable install
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
#: The configs under conf/ that commands start from; every other file is a group option.
ENTRY_CONFIGS = frozenset(
    {"train.yaml", "eval.yaml", "data_stats.yaml", "predict.yaml", "export.yaml", "prune.yaml"}
)

#: A run of a few seconds on the synthetic data: 4 batches an epoch, 2 epochs.
TINY = [
    "data.image_size=32",
    "data.num_train=32",
    "data.num_val=16",
    "data.num_test=16",
    "data.loader.batch_size=8",
    "model.encoder.widths=[8,16,32]",
    "trainer.max_epochs=2",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]

#: A run long enough to be interrupted inside a chosen epoch: 24 batches an epoch, each one
#: logged and flushed, `EPOCHS` epochs.
EPOCHS = 4
BATCHES = 24


def interruptible(epochs: int = EPOCHS) -> list[str]:
    return [
        "data.image_size=32",
        f"data.num_train={BATCHES * 4}",
        "data.num_val=8",
        "data.num_test=8",
        "data.loader.batch_size=4",
        "model.encoder.widths=[8,16,32]",
        f"trainer.max_epochs={epochs}",
        "trainer.log_every_n_steps=1",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
    ]


ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}


def run_module(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m <module> <args>`` in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )


def run_here(main: Callable[[], None], *args: str, cwd: Path) -> int:
    """A console entry point run in this process from ``cwd``, for fixtures of any scope; gives
    its exit code. A fresh interpreter would spend seconds importing torch and Lightning first.

    The working directory, ``sys.argv``, torch's deterministic setting (which a run with
    ``trainer.deterministic=true`` switches on for the process) and the root logger are put back
    afterwards: Hydra points the logger at streams that a test's capture closes, and later
    tests' log records would hit closed files.
    """
    cwd_before, argv = os.getcwd(), sys.argv
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    os.chdir(cwd)
    sys.argv = ["seglab", *args]
    code = 0
    try:
        main()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        os.chdir(cwd_before)
        sys.argv = argv
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)
    return code


def train_once(root: Path, *args: str, cwd: Path | None = None) -> Path:
    """The directory of one seglab-train run with ``args``, trained in this process below
    ``root`` (from ``cwd``, default ``root``); fails the test if the run fails (its error is in
    the test's captured output)."""
    from seglab.cli.train import main

    code = run_here(main, *args, f"paths.output_root={root}", cwd=cwd or root)
    assert code == 0, f"seglab-train {' '.join(args)} exited with {code}"
    (run_dir,) = (root / "train").iterdir()
    return run_dir


def resume(run_dir: Path, *args: str, cwd: Path) -> None:
    """Resume ``run_dir`` from its last.ckpt with ``args`` in a fresh interpreter from ``cwd``,
    as a user would after the first process ended; fails the test if the resume fails."""
    result = run_module(
        "seglab.cli.train", f"ckpt_path={run_dir}/checkpoints/last.ckpt", *args, cwd=cwd
    )
    assert result.returncode == 0, result.stderr[-3000:]


def start_training(*args: str, cwd: Path, log: Path) -> subprocess.Popen:
    """seglab-train in the background, its output going to ``log``."""
    with open(log, "w") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "seglab.cli.train", *args],
            cwd=cwd,
            env=ENV,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def last_checkpoint(run_dir: Path) -> dict | None:
    """last.ckpt once it is whole (it may be read while being written)."""
    try:
        return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    except Exception:
        return None


def train_steps(run_dir: Path) -> list[int]:
    """The steps of the run's logged train/loss points so far."""
    try:
        return [step for step, _ in read_scalars(run_dir).get("train/loss", [])]
    except Exception:  # no event file yet, or one being written
        return []


def wait_for(condition: Callable[[], bool], process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 240
    while not condition():
        assert process.poll() is None, f"training ended (code {process.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def inside_epoch(root: Path, process: subprocess.Popen, epoch: int) -> Path:
    """Wait until the only run below ``root`` has written last.ckpt of the epoch before
    ``epoch`` (counted from 1) and logged some of ``epoch``; returns its directory."""
    wait_for(lambda: any((root / "train").glob("*/checkpoints")), process, "a run dir")
    (run_dir,) = (root / "train").iterdir()
    wait_for(
        lambda: (last_checkpoint(run_dir) or {}).get("epoch") == epoch - 2,
        process,
        f"last.ckpt of epoch {epoch - 1}",
    )
    steps_before = (epoch - 1) * BATCHES
    wait_for(lambda: max(train_steps(run_dir), default=0) > steps_before, process, f"epoch {epoch}")
    return run_dir


@functools.cache
def _data_options(option: str) -> dict[str, Any]:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        # no run directory to record folds, a held-out group, a val share or a labelled subset in
        overrides = [
            f"data={option}",
            "data.splits.folds_record=null",
            "data.few_labels.labeled_record=null",
        ]
        cfg = compose(config_name="train", overrides=overrides)
        for record in ("holdout_record", "split_record"):
            if record in cfg.data.splits:
                cfg.data.splits[record] = None
    options = OmegaConf.to_container(cfg.data, resolve=True)
    del options["_target_"]
    return options


def data_options(option: str) -> dict[str, Any]:
    """The arguments ``seglab-train data=<option>`` builds its datamodule with, resolved.

    Tests build datamodules from these, changing only what they are about, because the
    datamodules take every value from their config and restate none.
    """
    return copy.deepcopy(_data_options(option))


#: the grouped options of a data config (``data.loader``, ...): a mapping each
DATA_GROUPS = ("layout", "augment", "loader", "splits", "few_labels")
#: no random flip or colour jitter: training images read as they were saved
UNAUGMENTED = {"augment": {"hflip": 0.0, "color_jitter": None}}


def with_options(values: dict[str, Any], **options: Any) -> dict[str, Any]:
    """Datamodule arguments ``values`` with ``options`` in place: the keys given of a group
    (``loader={"batch_size": 2}``) replace those keys of that group alone, other options
    replace the value."""
    merged = copy.deepcopy(values)
    for key, value in options.items():
        if key in DATA_GROUPS and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def folder_datamodule(root: Path, **options: Any) -> FolderDataModule:
    """conf/data/folder.yaml's datamodule on ``root`` as a user leaves it (no mask_values):
    whole images (no crop or scaling), batches of 2 read in this process, no scan cache;
    ``options`` replace any of the values (`with_options`), and ``num_classes`` follows
    ``classes`` unless given."""
    values = with_options(
        data_options("folder"),
        augment={"crop_size": None, "scale_range": None},
        loader={"num_workers": 0, "batch_size": 2},
        cache_dir=None,
        root=root,
    )
    values = with_options(values, **options)
    if "num_classes" not in options:
        values["num_classes"] = len(values["classes"])
    return FolderDataModule(**values)


def binary_folder(root: Path, **options: Any) -> FolderDataModule:
    """`folder_datamodule` of 0/255 background/cell masks; ``options`` replace any value."""
    binary = {"classes": ["background", "cell"], "mask_values": [0, 255]}
    return folder_datamodule(root, **{**binary, **options})


def save_checkpoint(model: torch.nn.Module, cfg: Any, path: Path) -> Path:
    """``model`` and its composed ``cfg`` saved as seglab-train saves a checkpoint (the
    entries every checkpoint reader needs), without training it."""
    from seglab.engine.checkpoints import CHECKPOINT_KEY

    torch.save(
        {
            CHECKPOINT_KEY: {
                "config": OmegaConf.to_container(cfg, resolve=True),
                "classes": list(cfg.data.classes),
            },
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        },
        path,
    )
    return path


def quick_first(cases: Sequence[str]) -> list[Any]:
    """Parameters over ``cases`` with only the first in the quick subset: each case starts a
    run (about 1 s), and one is enough to show the refusal works."""
    return [pytest.param(c, marks=[pytest.mark.slow] if i else []) for i, c in enumerate(cases)]


def refused_before_training(cli: Callable[..., Any], root: Path, *args: str, message: str) -> Path:
    """Runs seglab-train with ``args`` under ``root`` (through the ``cli`` fixture), requires
    exit 2 with one error line starting with ``message`` and no checkpoint; returns the run
    directory, for the caller's own checks of what was not written."""
    from seglab.cli.train import main as train_main

    code, _, err = cli(train_main, *args, f"paths.output_root={root}", cwd=root)
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith(f"seglab-train: error: {message}"), line
    (run_dir,) = (root / "train").iterdir()
    assert not (run_dir / "checkpoints").exists()
    # the run directory says why it holds nothing
    assert line in (run_dir / "train.log").read_text()
    return run_dir


def save_pair(
    root: Path, split: str, stem: str, image: Any, mask: Any, image_suffix: str = ".png"
) -> None:
    """``image`` and its ``mask`` (uint8 arrays) in conf/data/folder.yaml's layout:
    ``<root>/<split>/images/<stem><image_suffix>`` and ``<root>/<split>/masks/<stem>.png``."""
    from PIL import Image

    for folder, array, suffix in (("images", image, image_suffix), ("masks", mask, ".png")):
        (root / split / folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(root / split / folder / f"{stem}{suffix}")


def portrait_folder(
    root: Path, count: int = 10, half_size: Sequence[int] = (), mask_format: str = "PNG"
) -> Path:
    """The user's portrait dataset in small: ``count`` 24x32 (WxH) JPEG photos in
    ``<root>/images`` and their 0/255 masks (the person, 255, is about 60% of each) in
    ``<root>/masks``, no split folders; the masks of the photos numbered in ``half_size`` are
    at half size (12x16), and masks are saved in ``mask_format`` (``.jpg`` for JPEG)."""
    import numpy as np
    from PIL import Image

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    suffix = ".jpg" if mask_format == "JPEG" else ".png"
    for index in range(count):
        mask = np.zeros((32, 24), np.uint8)
        mask[6 + index % 3 :, 3:21] = 255
        person = (mask[..., None] > 0) * np.array([150, 100, 60])
        photo = (rng.integers(0, 80, (32, 24, 3)) + person).astype(np.uint8)
        Image.fromarray(photo).save(root / "images" / f"p{index:03d}.jpg")
        saved = Image.fromarray(mask)
        if index in half_size:
            saved = saved.resize((12, 16), Image.Resampling.NEAREST)
        saved.save(root / "masks" / f"p{index:03d}{suffix}", format=mask_format)
    return root
