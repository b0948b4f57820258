"""seglab-eval, seglab-predict and seglab-export compose their command line onto the config a
checkpoint carries: any key of the run is overridable, a config group is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from omegaconf import OmegaConf
from PIL import Image

from seglab.cli.eval import main as eval_main
from seglab.cli.export import main as export_main
from seglab.cli.predict import main as predict_main
from seglab.config.spec import resolve_spec
from seglab.engine.checkpoints import CHECKPOINT_KEY
from seglab.workflows.build import build_model


def _camvid_like(root: Path) -> None:
    """Two test frames in CamVid's SegNet layout: ``test/`` images, ``testannot/`` class ids."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
        for index in range(2):
            image = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
            Image.fromarray(image).save(root / split / f"0001TP_{index:06d}.png")
            mask = rng.integers(0, 12, (40, 56), dtype=np.uint8)  # 11 is void
            Image.fromarray(mask).save(root / f"{split}annot" / f"0001TP_{index:06d}.png")


@pytest.fixture(scope="module")
def camvid_checkpoint(tmp_path_factory: pytest.TempPathFactory, compose) -> tuple[Path, Path]:
    """A checkpoint of a data=camvid run whose dataset has since moved; the new folder."""
    folder = tmp_path_factory.mktemp("camvid_ckpt")
    trained_on = folder / "was_here"
    _camvid_like(trained_on)
    cfg = compose(
        "train",
        f"paths.output_dir={folder}",
        f"paths.cache_dir={folder / 'cache'}",
        "data=camvid",
        f"data.root={trained_on}",
        "data.eval_scale=0.5",
        "data.loader.batch_size=2",
        "data.loader.num_workers=0",
        "model.encoder.widths=[8,16,32]",
        "trainer.accelerator=cpu",
        "trainer.precision=32-true",
    )
    torch.manual_seed(0)
    model = build_model(resolve_spec(cfg))
    path = folder / "best.ckpt"
    torch.save(
        {
            CHECKPOINT_KEY: {"config": OmegaConf.to_container(cfg, resolve=True)},
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        },
        path,
    )
    moved = folder / "moved"
    trained_on.rename(moved)
    return path, moved


@pytest.fixture
def on_checkpoint(camvid_checkpoint: tuple[Path, Path], tmp_path: Path, cli):
    """``on_checkpoint(main, *args)``: the entry point on the moved run's checkpoint, writing
    below this test's folder."""
    ckpt, _ = camvid_checkpoint

    def run(main, *args: str) -> tuple[int, str, str]:
        output_root = f"paths.output_root={tmp_path / 'outputs'}"
        return cli(main, f"ckpt_path={ckpt}", *args, output_root, cwd=tmp_path)

    return run


def test_eval_takes_a_moved_dataset_and_keeps_the_run_data_settings(
    camvid_checkpoint: tuple[Path, Path], tmp_path: Path, on_checkpoint
) -> None:
    _, moved = camvid_checkpoint
    code, out, err = on_checkpoint(
        eval_main,
        "split=test",
        f"data.root={moved}",
    )
    assert code == 0, err
    (run_dir,) = (tmp_path / "outputs" / "eval").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["split"] == "test" and len(metrics["per_class"]) == 11
    composed = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    assert composed["data"]["root"] == str(moved)
    # the run's own data settings, not the camvid group's defaults
    assert composed["data"]["eval_scale"] == 0.5 and composed["data"]["loader"]["batch_size"] == 2


def test_eval_without_the_new_root_names_the_missing_folder(on_checkpoint) -> None:
    code, _, err = on_checkpoint(
        eval_main,
        "split=test",
    )
    assert code == 2
    assert err.startswith("seglab-eval: error: ") and "was_here" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("main", [eval_main, predict_main, export_main])
def test_a_group_override_is_refused_in_one_line(
    camvid_checkpoint: tuple[Path, Path], on_checkpoint, main
) -> None:
    _, moved = camvid_checkpoint
    code, _, err = on_checkpoint(
        main,
        "data=camvid",
        f"data.root={moved}",
    )
    assert code == 2
    assert "error: data=camvid: the checkpoint's data settings are used as they were" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.slow  # whole commands on the checkpoint: seconds
def test_predict_and_export_take_overrides_of_the_run_config(
    camvid_checkpoint: tuple[Path, Path], tmp_path: Path, on_checkpoint
) -> None:
    _, moved = camvid_checkpoint
    code, _, err = on_checkpoint(
        predict_main,
        f"input={moved / 'test'}",
        f"output={tmp_path / 'masks'}",
        f"data.root={moved}",
        "inference.tile=32",
        "device=cpu",
    )
    assert code == 0, err
    with Image.open(tmp_path / "masks" / "0001TP_000000.png") as mask:
        assert mask.size == (56, 40)
    # the folder holds predictions only; the command's record is a run of its own
    assert {path.suffix for path in (tmp_path / "masks").iterdir()} == {".png"}
    (record,) = (tmp_path / "outputs" / "predict").iterdir()
    assert (record / ".hydra" / "config.yaml").is_file() and (record / "predict.log").is_file()
    # nor are masks written into a run's directory
    code, _, err = on_checkpoint(
        predict_main, f"input={moved / 'test'}", f"output={record}", f"data.root={moved}"
    )
    assert code == 2 and f"output={record} is a run's directory" in err, err
    code, _, err = on_checkpoint(
        export_main,
        "format=torchscript",
        f"output={tmp_path / 'model.pt'}",
        f"data.root={moved}",
        "data.in_channels=3",
    )
    assert code == 0, err
    assert (tmp_path / "model.pt").is_file()


@pytest.mark.slow  # whole commands on the checkpoint: seconds
def test_a_command_reads_its_checkpoint_once(
    camvid_checkpoint: tuple[Path, Path], on_checkpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    ckpt, moved = camvid_checkpoint
    reads = []
    load = torch.load

    def counted(file, *args, **kwargs):
        reads.append(Path(file))
        return load(file, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counted)
    code, _, err = on_checkpoint(eval_main, "split=test", f"data.root={moved}")
    assert code == 0, err
    assert reads.count(ckpt) == 1
