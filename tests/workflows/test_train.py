"""End to end through the command line: train a tiny run, read it back, evaluate it."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from tiny import (
    TINY,
    binary_folder,
    data_options,
    quick_first,
    refused_before_training,
    run_here,
    save_pair,
    train_once,
)

from seglab.cli.eval import main as eval_main
from seglab.cli.train import main as train_main
from seglab.runs.directories import load_events, read_hparams, read_scalars
from seglab.workflows.evaluation import format_report


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_once(tmp_path_factory.mktemp("runs"), *TINY)


@pytest.mark.slow
def test_run_directory_holds_config_checkpoints_and_events(trained_run: Path) -> None:
    for name in ("config.yaml", "config_resolved.yaml", "overrides.yaml", "hydra.yaml"):
        assert (trained_run / ".hydra" / name).is_file(), name
    assert (trained_run / "checkpoints" / "best.ckpt").is_file()
    assert (trained_run / "checkpoints" / "last.ckpt").is_file()
    checkpoint = torch.load(trained_run / "checkpoints" / "best.ckpt", weights_only=True)
    assert checkpoint["seglab"]["config"]["data"]["image_size"] == 32


@pytest.mark.slow
def test_tensorboard_has_every_promised_tag(trained_run: Path) -> None:
    scalars = read_scalars(trained_run)
    classes = ["background", "ellipse", "rectangle", "triangle"]
    expected = ["train/loss", "train/lr", "val/loss", "val/mIoU_best", "val/mDice_best"]
    for stage in ("val", "test"):
        expected += [f"{stage}/{m}" for m in ("mIoU", "mDice", "pixel_accuracy")]
        expected += [f"{stage}_{m}/{c}" for m in ("IoU", "Dice", "BoundaryIoU") for c in classes]
        expected.append(f"{stage}/mBoundaryIoU")
    missing = [tag for tag in expected if tag not in scalars]
    assert not missing, missing
    assert len(scalars["val/mIoU"]) == 2, "one val point per epoch, no sanity-check point"
    best = max(value for _, value in scalars["val/mIoU"])
    assert scalars["val/mIoU_best"][-1][1] == pytest.approx(best)
    events = load_events(trained_run)
    assert set(events.Tags()["images"]) >= {"val/predictions", "val/confusion_matrix"}
    assert len(events.Images("val/predictions")) == 2
    # the 32x32 samples enlarged 4 times: four 128-pixel columns and the gaps between them
    grid = events.Images("val/predictions")[-1]
    assert 4 * 128 < grid.width < 4 * 128 + 40
    assert "hp_metric" not in scalars
    params = read_hparams(trained_run)
    assert params["data.image_size"] == 32
    # booleans as booleans; a swapped group by its option, not by the class it builds
    assert params["data.loader.drop_last"] is True and params["test_after_fit"] is True
    # how fast a run loads its data and what it shows while it trains change no result
    assert not {
        "data.loader.num_workers",
        "data.loader.pin_memory",
        "trainer.log_every_n_steps",
    } & set(params)
    assert params["model/decoder"] == "unet" and "model.decoder._target_" not in params
    assert not [key for key in params if key.startswith(("callbacks", "logger", "paths", "hydra"))]
    # the config text is the config the checkpoint holds (a 4-space-indented YAML block)
    (logged,) = events.Tensors("config/text_summary")
    text = logged.tensor_proto.string_val[0].decode()
    shown = OmegaConf.create("\n".join(line.removeprefix("    ") for line in text.splitlines()))
    checkpoint = torch.load(trained_run / "checkpoints" / "best.ckpt", weights_only=True)
    assert OmegaConf.to_container(shown) == checkpoint["seglab"]["config"]


@pytest.mark.slow
def test_eval_reproduces_the_best_logged_val_miou(trained_run: Path, tmp_path: Path, cli) -> None:
    ckpt = trained_run / "checkpoints" / "best.ckpt"
    code, out, err = cli(
        eval_main,
        f"ckpt_path={ckpt}",
        "split=val",
        f"paths.output_root={tmp_path}",
        "trainer.enable_progress_bar=false",
        cwd=tmp_path,
    )
    assert code == 0, err[-3000:]
    assert "background" in out and "IoU" in out
    (eval_dir,) = (tmp_path / "eval").iterdir()
    report = json.loads((eval_dir / "metrics.json").read_text())
    assert set(report) >= {"mIoU", "mDice", "mBoundaryIoU", "pixel_accuracy", "per_class"}
    assert set(report["per_class"]["triangle"]) == {"IoU", "Dice", "BoundaryIoU"}
    scalars = read_scalars(trained_run)
    best = max(range(len(scalars["val/mIoU"])), key=lambda i: scalars["val/mIoU"][i][1])
    assert report["mIoU"] == pytest.approx(scalars["val/mIoU"][best][1], abs=1e-4)
    assert report["mBoundaryIoU"] == pytest.approx(scalars["val/mBoundaryIoU"][best][1], abs=1e-4)


@pytest.mark.slow
def test_eval_adds_hd95_on_request(trained_run: Path, tmp_path: Path, cli) -> None:
    ckpt = trained_run / "checkpoints" / "best.ckpt"
    code, out, err = cli(
        eval_main,
        f"ckpt_path={ckpt}",
        "split=val",
        "metrics.boundary.hd95=true",
        f"paths.output_root={tmp_path}",
        "trainer.enable_progress_bar=false",
        cwd=tmp_path,
    )
    assert code == 0, err[-3000:]
    assert "HD95" in out.splitlines()[0]
    (eval_dir,) = (tmp_path / "eval").iterdir()
    report = json.loads((eval_dir / "metrics.json").read_text())
    distances = [scores["HD95"] for scores in report["per_class"].values()]
    distances = [value for value in distances if value is not None and value == value]
    assert distances and report["mHD95"] == pytest.approx(sum(distances) / len(distances))
    assert set(report["per_class"]["triangle"]) == {"IoU", "Dice", "BoundaryIoU", "HD95"}


def test_eval_report_prints_classes_then_the_means_below_a_rule() -> None:
    report = {
        "per_class": {
            "road": {"IoU": 0.5, "Dice": 0.66666},
            "bicyclist": {"IoU": None, "Dice": None},
        },
        "mIoU": 0.5,
        "mDice": 0.66666,
        "pixel_accuracy": 0.9,
        "split": "val",
    }
    assert format_report(report).splitlines() == [
        "class         IoU    Dice",
        "road       0.5000  0.6667",
        "bicyclist  absent  absent",
        "-------------------------",
        "mean       0.5000  0.6667",
        "pixel accuracy: 0.9000   split: val",
    ]


@pytest.mark.slow
def test_eval_overrides_apply_on_top_of_the_checkpoint(
    trained_run: Path, tmp_path: Path, cli
) -> None:
    ckpt = trained_run / "checkpoints" / "best.ckpt"
    code, _, err = cli(
        eval_main,
        f"ckpt_path={ckpt}",
        "split=test",
        "data.num_test=4",
        f"paths.output_root={tmp_path}",
        "trainer.enable_progress_bar=false",
        cwd=tmp_path,
    )
    assert code == 0, err[-3000:]
    (eval_dir,) = (tmp_path / "eval").iterdir()
    assert json.loads((eval_dir / "metrics.json").read_text())["split"] == "test"


def test_eval_of_a_missing_checkpoint_fails_in_one_line(tmp_path: Path, cli) -> None:
    code, _, err = cli(
        eval_main,
        "ckpt_path=nowhere.ckpt",
        f"paths.output_root={tmp_path}",
        cwd=tmp_path,
    )
    assert code == 2
    assert re.fullmatch(r"seglab-eval: error: ckpt_path=nowhere\.ckpt does not exist", err.strip())


def test_eval_of_a_foreign_checkpoint_says_why(tmp_path: Path, cli) -> None:
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    code, _, err = cli(
        eval_main,
        "ckpt_path=other.ckpt",
        f"paths.output_root={tmp_path}",
        cwd=tmp_path,
    )
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "other.ckpt is not a seglab checkpoint" in lines[0]


def test_train_rejects_an_unknown_group_option(tmp_path: Path, cli) -> None:
    code, _, err = cli(
        train_main,
        "model/encoder=no_such_encoder",
        cwd=tmp_path,
    )
    assert code == 2
    # the option named, and the options there are
    (line,) = err.strip().splitlines()
    assert re.match(r"seglab-train: error: model/encoder=no_such_encoder: .*options: .*conv", line)
    assert not (tmp_path / "outputs").exists()


# --- a config checked before any work -----------------------------------------------------

BAD_VALUES = {
    "batch size": (["data.loader.batch_size=0"], "data.loader.batch_size=0 must be positive"),
    "classes of the data": (
        ["data.num_classes=5"],
        "data.num_classes=5 but the shapes generator draws 4 classes",
    ),
    "classes of the model": (
        ["model.num_classes=3"],
        "model.num_classes=3 differs from data.num_classes=4",
    ),
    "ignore index": (["data.ignore_index=2"], "data.ignore_index=2 is a valid class index"),
    "size under the stride": (
        ["data.image_size=16", "model.encoder.widths=[8,16,32,64,128,256]"],
        "data.image_size=16 gives 16x16 training images, smaller than the model's stride 32",
    ),
    "data folder": (
        ["data=folder", "data.root=/no/such/folder"],
        "data.root=/no/such/folder is not a folder",
    ),
    "weights file": (
        ["model/encoder=resnet18", "model.encoder.weights_path=/no/such.pth"],
        "model.encoder: ResNetEncoder: weights_path='/no/such.pth' is not a file",
    ),
    "on_nonfinite": (["on_nonfinite=maybe"], "on_nonfinite=maybe must be one of: stop, skip"),
    "semi-supervised method in binary mode": (
        ["data=synthetic_binary", "mode=binary", "loss=bce_dice", "method=fixmatch"],
        "method._target_=seglab.methods.FixMatch fits mode=multiclass only",
    ),
    "loss that does not fit the mode": (
        ["data=synthetic_multilabel", "mode=multilabel"],
        "loss.losses.ce: CrossEntropyLoss does not fit mode=multilabel; use loss=bce",
    ),
}


@pytest.mark.parametrize("case", quick_first(BAD_VALUES))
def test_a_bad_config_value_stops_the_run_in_one_line_before_any_work(
    case: str, tmp_path: Path, cli
) -> None:
    overrides, message = BAD_VALUES[case]
    run_dir = refused_before_training(cli, tmp_path, *overrides, message=message)
    assert not list(run_dir.glob("events.out.*"))


# --- real data: image/mask folders and CamVid ---------------------------------------------

QUIET = [
    "trainer.max_epochs=1",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "data.loader.num_workers=0",
    "model.encoder.widths=[8,16]",
]


def _binary_folder(root: Path) -> Path:
    """Cells saved as 0/255 masks, in <root>/<split>/{images,masks}/, no test split."""
    generator = torch.Generator().manual_seed(0)
    for split, count in (("train", 8), ("val", 4)):
        for index in range(count):
            mask = torch.zeros(24, 24, dtype=torch.uint8)
            top, left = torch.randint(0, 12, (2,), generator=generator).tolist()
            mask[top : top + 10, left : left + 10] = 255
            image = torch.stack([mask, 255 - mask, torch.full_like(mask, 90)], -1)
            save_pair(root, split, str(index), image.numpy(), mask.numpy(), image_suffix=".jpg")
    return root


@pytest.mark.slow
def test_folder_dataset_with_binary_masks_trains_from_overrides(tmp_path: Path, cli) -> None:
    root = _binary_folder(tmp_path / "cells")
    code, out, err = cli(
        train_main,
        "data=folder",
        f"data.root={root}",
        "data.classes=[background,cell]",
        "data.mask_values=[0,255]",
        "data.augment.crop_size=[16,16]",
        "data.loader.batch_size=4",
        "loss.losses.ce.class_weights=median_frequency",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"paths.output_root={tmp_path / 'runs'}",
        *QUIET,
        cwd=tmp_path,
    )
    assert code == 0, err[-3000:]
    assert f"skipping the test phase after fit: test split folder {root}/test/images" in out + err
    (run_dir,) = (tmp_path / "runs" / "train").iterdir()
    checkpoint = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    config = checkpoint["seglab"]["config"]
    assert config["data"]["num_classes"] == 2
    weights = config["loss"]["losses"]["ce"]["class_weights"]
    # every train mask holds a 10x10 cell in 24x24 pixels: median(freq) / freq by hand
    frequency = [476 / 576, 100 / 576]
    median = sum(frequency) / 2
    assert weights == pytest.approx([median / f for f in frequency])
    # the record of what ran holds the weights the checkpoint holds, not `median_frequency`
    recorded = OmegaConf.load(run_dir / ".hydra" / "config_resolved.yaml")
    assert list(recorded.loss.losses.ce.class_weights) == weights
    assert "val/mIoU" in read_scalars(run_dir)
    assert not any(path.suffix == ".pt" for path in root.rglob("*"))


@pytest.mark.slow
def test_an_image_that_breaks_after_the_setup_check_stops_training_naming_it(
    tmp_path: Path, cli
) -> None:
    root = _binary_folder(tmp_path / "cells")
    cache = tmp_path / "cache"
    datamodule = binary_folder(root, cache_dir=cache)
    for split in ("train", "val"):  # what an earlier run left in the cache
        datamodule.scan(split)
    # the file goes bad with its size and time unchanged: the cached scan still trusts it
    image = root / "train" / "images" / "3.jpg"
    stat = image.stat()
    image.write_bytes(bytes(stat.st_size))
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    code, _, err = cli(
        train_main,
        "data=folder",
        f"data.root={root}",
        "data.classes=[background,cell]",
        "data.mask_values=[0,255]",
        "data.augment.crop_size=[16,16]",
        "data.loader.batch_size=4",
        # read in a worker process, as real runs read
        "data.loader.num_workers=1",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "model.encoder.widths=[8,16]",
        f"paths.cache_dir={cache}",
        f"paths.output_root={tmp_path / 'runs'}",
        cwd=tmp_path,
    )
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith(f"seglab-train: error: {image}: unreadable image"), line
    assert re.search(r"restore or remove it \(and its pair\), then resume from .*last\.ckpt$", line)


def test_data_stats_writes_class_stats_json(tmp_path: Path, cli) -> None:
    from seglab.cli.data import main

    root = _binary_folder(tmp_path / "cells")
    code, out, err = cli(
        main,
        "stats",
        "data=folder",
        f"data.root={root}",
        "data.mask_values=[0,255]",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"paths.output_root={tmp_path / 'runs'}",
        cwd=tmp_path,
    )
    assert code == 0, err[-3000:]
    assert "median-freq weight" in out
    (run_dir,) = (tmp_path / "runs" / "data_stats").iterdir()
    stats = json.loads((run_dir / "class_stats.json").read_text())
    assert stats["classes"] == ["background", "foreground"]
    assert sum(stats["pixel_frequency"]) == pytest.approx(1.0)
    assert stats["pixel_frequency"][1] == pytest.approx(100 / 576)
    frequency = [476 / 576, 100 / 576]
    median = sum(frequency) / 2
    assert stats["median_frequency_weights"] == pytest.approx([median / f for f in frequency])


def test_data_stats_needs_a_command(monkeypatch, capsys) -> None:
    from seglab.cli.data import main

    monkeypatch.setattr(sys, "argv", ["seglab-data", "data=folder"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert "usage: seglab-data stats" in capsys.readouterr().err


@pytest.fixture(scope="module")
def camvid_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One scan cache for the CamVid tests, so that its files are checked once."""
    return tmp_path_factory.mktemp("camvid_cache")


@pytest.fixture(scope="module")
def camvid_run(
    tmp_path_factory: pytest.TempPathFactory, camvid_root: Path, camvid_cache: Path
) -> Path:
    root = tmp_path_factory.mktemp("camvid_runs")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = run_here(
            train_main,
            "data=camvid",
            f"data.root={camvid_root}",
            "data.augment.crop_size=[64,64]",
            "data.loader.batch_size=2",
            "data.loader.eval_batch_size=4",
            "data.eval_scale=0.25",
            "trainer.limit_train_batches=3",
            "trainer.limit_val_batches=2",
            "trainer.num_sanity_val_steps=0",
            f"paths.cache_dir={camvid_cache}",
            f"paths.output_root={root}",
            *QUIET,
            cwd=root,
        )
    assert code == 0, out.getvalue()[-3000:]
    # the folder as given, not resolved: a symlinked data root is named as the user named it
    assert f"test split folder {camvid_root}/test does not exist" in out.getvalue()
    (run_dir,) = (root / "train").iterdir()
    return run_dir


@pytest.mark.slow
def test_camvid_trains_one_short_epoch(camvid_run: Path, camvid_root: Path) -> None:
    scalars = read_scalars(camvid_run)
    assert len(scalars["val/mIoU"]) == 1
    assert not any(tag.startswith("test/") for tag in scalars)
    checkpoint = torch.load(camvid_run / "checkpoints" / "best.ckpt", weights_only=True)
    assert checkpoint["seglab"]["config"]["data"]["root"] == str(camvid_root)


@pytest.mark.slow
def test_eval_on_an_absent_split_fails_in_one_line(
    camvid_run: Path, camvid_root: Path, tmp_path: Path, cli
) -> None:
    code, _, err = cli(
        eval_main,
        f"ckpt_path={camvid_run / 'checkpoints' / 'best.ckpt'}",
        "split=test",
        f"paths.output_root={tmp_path}",
        cwd=tmp_path,
    )
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith("seglab-eval: error: cannot evaluate split=test: "), line
    assert line.endswith(f"test split folder {camvid_root}/test does not exist"), line


@pytest.mark.slow  # reads every CamVid training mask
def test_camvid_stats_match_its_published_pixel_counts(
    camvid_root: Path, camvid_cache: Path
) -> None:
    from seglab.data import CamVidDataModule
    from seglab.data.stats import class_statistics

    readme_counts = [10682767, 14750079, 623349, 20076880, 2845085, 6166762, 743859, 714595]
    readme_counts += [3719877, 405385, 184967]
    datamodule = CamVidDataModule(
        **{**data_options("camvid"), "root": camvid_root, "cache_dir": camvid_cache}
    )
    stats = class_statistics(datamodule.classes, *datamodule.class_pixel_counts("train"))
    assert stats.pixel_count == readme_counts
    assert stats.pixel_frequency == pytest.approx([c / sum(readme_counts) for c in readme_counts])


@pytest.mark.slow
def test_the_model_cost_is_logged_once_and_is_an_hparams_metric(trained_run: Path) -> None:
    from omegaconf import OmegaConf

    from seglab.config.spec import resolve_spec
    from seglab.models.cost import forward_flops
    from seglab.workflows.build import build_model

    cfg = OmegaConf.load(trained_run / ".hydra" / "config_resolved.yaml")
    model = build_model(resolve_spec(cfg))
    scalars = read_scalars(trained_run)
    assert scalars["model/params"] == [(0, sum(p.numel() for p in model.parameters()))]
    # at the training size, data.image_size=32, one image; the encoder's 3x3 convs alone (2 a
    # stage at widths 8, 16, 32, the stages 32, 16 and 8 pixels a side) take this many FLOPs,
    # a multiply-add counted as 2
    ((step, gflops),) = scalars["model/gflops"]
    assert step == 0 and gflops == pytest.approx(forward_flops(model, (1, 3, 32, 32)) / 1e9)
    encoder = sum(
        2 * side * side * out * (inp + out) * 9
        for side, inp, out in ((32, 3, 8), (16, 8, 16), (8, 16, 32))
    )
    assert gflops > encoder / 1e9
