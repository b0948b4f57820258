"""Binary and multilabel runs end to end on tiny synthetic data: seglab-train, then
seglab-eval, seglab-predict, seglab-export and seglab.load on its checkpoint, each reading
the mode from the checkpoint alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny import train_once

import seglab
from seglab.cli.eval import main as eval_main
from seglab.cli.export import main as export_main
from seglab.cli.predict import main as predict_main
from seglab.cli.train import main as train_main
from seglab.engine.checkpoints import CHECKPOINT_KEY
from seglab.runs.directories import read_scalars

pytestmark = pytest.mark.slow

#: one epoch of two batches, and a loss of the mode (seglab.losses' sigmoid Dice)
SHORT = [
    "data.image_size=32",
    "data.num_train=16",
    "data.num_val=8",
    "data.num_test=8",
    "data.loader.batch_size=8",
    "model.encoder.widths=[8,16,32]",
    "trainer.max_epochs=1",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "loss=dice",
]
CLASSES = {
    "binary": ["background", "foreground"],
    "multilabel": ["ellipse", "rectangle", "triangle"],
}


@pytest.fixture(scope="module", params=["binary", "multilabel"])
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    mode = request.param
    root = tmp_path_factory.mktemp(mode)
    args = [f"data=synthetic_{mode}", f"mode={mode}", f"++loss.mode={mode}", *SHORT]
    return mode, train_once(root, *args)


def test_a_run_records_its_mode_and_logs_every_class(run) -> None:
    mode, run_dir = run
    checkpoint = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    config = checkpoint[CHECKPOINT_KEY]["config"]
    assert (config["mode"], config["threshold"]) == (mode, 0.5)
    head = checkpoint["state_dict"]["model.head.weight"]
    assert head.shape[0] == (1 if mode == "binary" else 3)
    scalars = read_scalars(run_dir)
    assert "val/mIoU" in scalars and "test/mIoU" in scalars
    logged = {name.split("/", 1)[1] for name in scalars if name.startswith("val_IoU/")}
    # every class of the synthetic shapes is in the val split, so each has its curve
    assert logged == set(CLASSES[mode])


def test_eval_predict_export_and_load_read_the_mode_of_the_checkpoint(
    run, cli, tmp_path: Path
) -> None:
    mode, run_dir = run
    ckpt = run_dir / "checkpoints" / "best.ckpt"
    code, _, err = cli(
        eval_main, f"ckpt_path={ckpt}", "split=val", f"paths.output_root={tmp_path}", cwd=tmp_path
    )
    assert code == 0, err
    (metrics,) = (tmp_path / "eval").glob("*/metrics.json")
    report = json.loads(metrics.read_text())
    assert list(report["per_class"]) == CLASSES[mode]
    ious = [v["IoU"] for v in report["per_class"].values() if v["IoU"] is not None]
    assert report["mIoU"] == pytest.approx(sum(ious) / len(ious))

    pixels = np.random.default_rng(0).integers(0, 256, (20, 27, 3)).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    # a threshold that splits this image's pixels, whatever one short epoch learnt
    probabilities = seglab.load(ckpt).probabilities(pixels)
    threshold = round(float(probabilities.median()), 4)
    assert (probabilities > threshold).any() and (probabilities <= threshold).any()
    output = tmp_path / "masks"
    code, _, err = cli(
        predict_main,
        f"ckpt_path={ckpt}",
        f"input={tmp_path / 'a.png'}",
        f"output={output}",
        f"threshold={threshold}",
        "save_probs=true",
        "device=cpu",
        cwd=tmp_path,
    )
    assert code == 0, err
    saved = torch.from_numpy(np.load(output / "a_probs.npy")).float()
    assert saved.shape == (1 if mode == "binary" else 3, 20, 27)
    assert torch.allclose(saved, probabilities, atol=2e-3)  # saved in float16
    files = (
        [output / "a.png"] if mode == "binary" else [output / c / "a.png" for c in CLASSES[mode]]
    )
    written = torch.stack([torch.from_numpy(np.array(Image.open(f))).long() for f in files])
    assert set(written.unique().tolist()) == {0, 255}
    clear = (probabilities - threshold).abs() > 1e-5
    assert torch.equal(written[clear], (probabilities[clear] > threshold).long() * 255)

    predictor = seglab.load(ckpt, threshold=threshold)
    mask = predictor(pixels)
    assert torch.equal(mask, written[0] // 255 if mode == "binary" else written // 255)

    code, out, err = cli(
        export_main,
        f"ckpt_path={ckpt}",
        f"output={tmp_path / 'model.pt'}",
        "format=torchscript",
        cwd=tmp_path,
    )
    assert code == 0, err
    exported = torch.jit.load(str(tmp_path / "model.pt"))
    image = torch.randn(1, 3, 20, 27)
    with torch.no_grad():
        assert torch.allclose(exported(image), predictor.model(image), atol=1e-5)
    assert exported(image).shape[1] == saved.shape[0]


def test_a_binary_run_of_four_classes_stops_before_training_with_one_line(
    cli, tmp_path: Path
) -> None:
    code, _, err = cli(
        train_main, "mode=binary", *SHORT, f"paths.output_root={tmp_path}", cwd=tmp_path
    )
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith("seglab-train: error: mode=binary scores background and fore")
    assert not (tmp_path / "train").exists() or not any((tmp_path / "train").glob("*/check*"))
