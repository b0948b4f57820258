"""Distributed training through Lightning: one run directory, metrics over the whole split."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import tiny
import torch
from omegaconf import OmegaConf

from seglab.cli.eval import main as eval_main
from seglab.cli.train import main as train_main
from seglab.config.spec import resolve_spec
from seglab.engine.checkpoints import CHECKPOINT_KEY, load_checkpoint
from seglab.runs.directories import SWEPT_KEYS_ENV, read_scalars
from seglab.workflows.build import build_datamodule, trained_model

# 5 val and 5 test images on 2 ranks: a padding sampler would score one image twice, and with
# 2 images a batch the first rank runs one batch more than the second
TINY = [*tiny.TINY, "data.num_val=5", "data.num_test=5", "data.loader.eval_batch_size=2"]


#: the test's own callback: its checkpoints are read with it trusted
OWN_CALLBACK = "test_ddp.SaveConfusion"


class SaveConfusion(pl.Callback):
    """Writes each rank's confusion matrix of the last evaluation epoch of each stage to
    ``<directory>/<stage>-rank<rank>.pt``, for a test to compare with one counted by hand."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def _save(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{stage}-rank{trainer.global_rank}.pt"
        torch.save(pl_module.last_confusion[stage], path)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._save(trainer, pl_module, "val")

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._save(trainer, pl_module, "test")


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # the ranks import SaveConfusion from this file, and what it imports from tests/
    here = Path(__file__).parent
    paths = [str(here), str(here.parent), os.environ.get("PYTHONPATH")]
    env = {
        **os.environ,
        "PYTHONWARNINGS": "ignore",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, paths)),
    }
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-process CPU fit and test; returns its root (the run is in ``train/``, the confusion
    matrices in ``confusion/``)."""
    root = tmp_path_factory.mktemp("ddp")
    result = _run(
        "seglab.cli.train",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.sync_batchnorm=false",
        *TINY,
        f"+callbacks.save_confusion._target_={OWN_CALLBACK}",
        f"+callbacks.save_confusion.directory={root / 'confusion'}",
        f"paths.output_root={root}",
        cwd=root,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return root


def _confusion_by_hand(ckpt_path: Path, split: str) -> torch.Tensor:
    """The checkpoint's confusion matrix over ``split``, one image at a time in one process."""
    checkpoint = load_checkpoint(ckpt_path, trusted=[OWN_CALLBACK])
    config = OmegaConf.create(checkpoint[CHECKPOINT_KEY]["config"])
    model = trained_model(resolve_spec(config), checkpoint)
    datamodule = build_datamodule(resolve_spec(config))
    dataset = datamodule.dataset(split)
    num_classes = datamodule.num_classes
    counts = torch.zeros(num_classes * num_classes, dtype=torch.int64)
    with torch.no_grad():
        for index in range(len(dataset)):
            image, mask, _ = dataset[index]
            prediction = model(image[None]).argmax(dim=1)[0]
            labelled = (mask >= 0) & (mask < num_classes)
            pairs = mask[labelled] * num_classes + prediction[labelled]
            counts += torch.bincount(pairs, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


@pytest.mark.slow
def test_two_process_ddp_on_cpu_logs_metrics_of_the_whole_split(ddp_run: Path) -> None:
    (run_dir,) = (ddp_run / "train").iterdir()  # both ranks wrote into one run directory
    logged = read_scalars(run_dir)["val/mIoU"]
    assert len(logged) == 2
    # a single process scoring the whole val split must find what the two ranks logged
    # together; a rank logging its own half would differ
    args = [
        f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
        "split=val",
        f"paths.output_root={ddp_run / 'eval'}",
        f"trusted_targets=[{OWN_CALLBACK}]",
        "trainer.enable_progress_bar=false",
    ]
    # in this process, the root logger's handlers given back afterwards (`tiny.run_here`)
    assert tiny.run_here(eval_main, *args, cwd=ddp_run) == 0
    (eval_dir,) = (ddp_run / "eval" / "eval").iterdir()
    report = json.loads((eval_dir / "metrics.json").read_text())
    assert report["mIoU"] == pytest.approx(logged[-1][1], abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize(("split", "checkpoint"), [("val", "last"), ("test", "best")])
def test_two_process_ddp_counts_every_image_of_an_odd_split_once(
    ddp_run: Path, split: str, checkpoint: str
) -> None:
    (run_dir,) = (ddp_run / "train").iterdir()
    # the last validation ran the weights of last.ckpt; the test after fit those of best.ckpt
    expected = _confusion_by_hand(run_dir / "checkpoints" / f"{checkpoint}.ckpt", split)
    assert int(expected.sum()) == 5 * 32 * 32  # synthetic masks have no void pixels
    for rank in (0, 1):
        counted = torch.load(ddp_run / "confusion" / f"{split}-rank{rank}.pt")
        assert torch.equal(counted.to(torch.int64), expected)


def test_multirun_with_a_relaunching_strategy_fails_fast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    monkeypatch.setenv(SWEPT_KEYS_ENV, "")  # main() sets it for the sweep; undone afterwards
    # through `cli`, which gives the root logger back the handlers it had before Hydra's
    args = ["-m", "trainer=ddp", "trainer.accelerator=cpu", "seed=1,2"]
    code, _, err = cli(train_main, *args, f"paths.output_root={tmp_path}", cwd=tmp_path)
    assert code == 2
    assert "trainer.strategy=ddp relaunches the command for every rank" in err
    assert "ddp_spawn" in err
    assert not list((tmp_path / "train").rglob("checkpoints"))
