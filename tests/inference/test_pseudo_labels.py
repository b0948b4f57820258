"""seglab-predict pseudo_labels=true: the dataset's own mask files, void below the confidence,
checked against probabilities from seglab.load and read back by the folder datamodule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from tiny import save_checkpoint

import seglab
from seglab.cli.predict import main as predict_main
from seglab.cli.train import main as train_main
from seglab.config.spec import resolve_spec
from seglab.data.label_map import label_table
from seglab.data.masks import MaskDecoder
from seglab.errors import SeglabError
from seglab.inference.pseudo_labels import PseudoLabeler
from seglab.task_modes import Binary, Multiclass
from seglab.workflows.build import build_model

TINY_MODEL = ["model.encoder.widths=[8,16,32]"]
#: a folder dataset whose masks store its three classes as 0, 128 and 255, and void as 64
FOLDER = [
    "data=folder",
    "data.classes=[sky,road,car]",
    "data.mask_values=[0,128,255]",
    "data.ignore_index=64",
]
#: sliding windows and test-time augmentation, which predict and seglab.load both apply
INFERENCE = {"tile": 16, "overlap": 0.5, "tta": {"hflip": True, "scales": [0.75, 1.0]}}
INFERENCE_ARGS = [
    "inference.tile=16",
    "inference.overlap=0.5",
    "inference.tta.hflip=true",
    "inference.tta.scales=[0.75,1.0]",
]


def _checkpoint(compose, folder: Path, *overrides: str, head_shift: float = 0.0) -> Path:
    """An untrained tiny model saved as seglab-train saves it, with the run config
    ``overrides`` make; its probabilities vary enough over an image to split by confidence.
    ``head_shift`` is added to the head's bias (a binary head's probabilities around 0.5)."""
    cfg = compose("train", f"paths.output_dir={folder}", *TINY_MODEL, *overrides)
    torch.manual_seed(0)
    model = build_model(resolve_spec(cfg))
    with torch.no_grad():
        model.head.bias += head_shift
    path = folder / "model.ckpt"
    return save_checkpoint(model, cfg, path)


@pytest.fixture(scope="module")
def folder_checkpoint(compose, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("folder")
    return _checkpoint(compose, folder, *FOLDER, f"data.root={folder}")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for index, (height, width) in enumerate([(32, 32), (24, 40)]):
        pixels = rng.integers(0, 256, (height, width, 3)).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"frame{index}.png")
    return folder


def _predict(cli, checkpoint: Path, images: Path, output: Path, *args: str) -> tuple[int, str]:
    code, out, err = cli(
        predict_main,
        f"ckpt_path={checkpoint}",
        f"input={images}",
        f"output={output}",
        "device=cpu",
        "pseudo_labels=true",
        *args,
        cwd=output.parent,
    )
    assert code == 0, err[-3000:]
    return code, out


def _top_probabilities(checkpoint: Path, images: Path) -> dict[str, torch.Tensor]:
    predictor = seglab.load(checkpoint, **INFERENCE)
    return {path.stem: predictor.probabilities(path) for path in sorted(images.glob("*.png"))}


def test_a_hand_worked_mask_keeps_the_confident_classes_in_their_stored_values() -> None:
    data = OmegaConf.create({"classes": ["a", "b", "c"], "num_classes": 3, "ignore_index": 64})
    data.mask_values = [0, 128, 255]
    probabilities = torch.tensor(
        [
            [[0.7, 0.1], [0.3, 0.2]],
            [[0.2, 0.8], [0.3, 0.1]],
            [[0.1, 0.1], [0.4, 0.7]],
        ]
    )
    labeler = PseudoLabeler(Multiclass(), data, confidence=0.7)
    stored, labels = labeler.mask(probabilities)
    assert stored.dtype == np.uint8
    np.testing.assert_array_equal(stored, [[0, 128], [64, 255]])
    assert labels.tolist() == [[0, 1], [2, 2]]
    assert labeler.kept_share() == 0.75
    # binary: one foreground channel, confident where max(p, 1 - p) reaches the confidence
    data = OmegaConf.create({"classes": ["bg", "fg"], "num_classes": 2, "ignore_index": 300})
    labeler = PseudoLabeler(Binary(), data, confidence=0.8)
    stored, _ = labeler.mask(torch.tensor([[[0.1, 0.3], [0.85, 0.5]]]))
    assert stored.dtype == np.uint16  # the void value needs 16 bits
    np.testing.assert_array_equal(stored, [[0, 300], [1, 300]])
    assert labeler.kept_share() == 0.5


def _street_data(label_map: dict) -> object:
    """The data config of a road/car dataset read through ``label_map``."""
    classes = {"classes": ["road", "car"], "num_classes": 2, "ignore_index": 255}
    return OmegaConf.create({**classes, "label_map": label_map})


def test_pseudo_masks_of_a_label_map_store_values_the_map_reads_back(tmp_path: Path) -> None:
    # road is raw 7 or 8, car 26; void is raw 0 or 255, so the labeler writes 7, 26 and 0
    label_map = {"road": [8, 7], "car": [26], "void": [255, 0]}
    probabilities = torch.tensor([[[0.9, 0.2], [0.5, 0.4]], [[0.1, 0.8], [0.5, 0.6]]])
    labeler = PseudoLabeler(Multiclass(), _street_data(label_map), confidence=0.7)
    stored, labels = labeler.mask(probabilities)
    np.testing.assert_array_equal(stored, [[7, 26], [0, 0]])
    labeler.save(stored, tmp_path / "mask.png")
    decoder = MaskDecoder(2, 255, label_map=label_table(label_map, ["road", "car"], 255))
    assert decoder(tmp_path / "mask.png").tolist() == [[0, 1], [255, 255]]


def test_pseudo_masks_need_a_void_value_and_raw_values_of_the_label_map() -> None:
    without_void = _street_data({"road": [7], "car": [26]})
    message = r"data\.label_map gives void no raw value.*data\.label_map\.void"
    with pytest.raises(SeglabError, match=message):
        PseudoLabeler(Multiclass(), without_void, confidence=0.7)
    PseudoLabeler(Multiclass(), without_void, confidence=None)  # no pixel is made void
    colours = _street_data({"road": [[128, 64, 128]], "car": [[0, 0, 142]]})
    with pytest.raises(SeglabError, match=r"data\.label_map maps colours"):
        PseudoLabeler(Multiclass(), colours, confidence=None)


def _between(values: torch.Tensor) -> float:
    """A threshold halfway between two neighbouring distinct values near the median, so that
    no probability lies on it."""
    distinct = values.flatten().unique()
    middle = len(distinct) // 2
    return float(distinct[middle - 1] + distinct[middle]) / 2


@pytest.mark.slow  # runs the model through seglab-predict and seglab.load
def test_pseudo_masks_are_the_argmax_where_confident_and_void_elsewhere_in_stored_values(
    folder_checkpoint: Path, images: Path, tmp_path: Path, cli
) -> None:
    probabilities = _top_probabilities(folder_checkpoint, images)
    top = torch.cat([p.max(dim=0).values.flatten() for p in probabilities.values()])
    confidence = _between(top)
    output = tmp_path / "pseudo"
    _, out = _predict(
        cli, folder_checkpoint, images, output, f"confidence={confidence}", *INFERENCE_ARGS
    )
    values = np.array([0, 128, 255])
    decoder = MaskDecoder(3, 64, mask_values=[0, 128, 255])
    for stem, probs in probabilities.items():
        confident, labels = probs.max(dim=0)
        keep = (confident >= confidence).numpy()
        with Image.open(output / f"{stem}.png") as mask:
            assert mask.mode == "L" and mask.size == tuple(probs.shape[:0:-1])
            stored = np.asarray(mask)
        expected = np.where(keep, values[labels.numpy()], 64)
        np.testing.assert_array_equal(stored, expected)
        # the dataset's own reader gets the classes back, and void where not confident
        read = decoder(output / f"{stem}.png")
        np.testing.assert_array_equal(read, np.where(keep, labels.numpy(), 64))
    assert not list(output.glob("*_overlay.jpg")) and len(list(output.glob("*.png"))) == 2
    share = float((top >= confidence).float().mean())
    assert 0.2 < share < 0.8
    assert f"{share:.1%} of {top.numel()} pixels at or above confidence={confidence}" in out


@pytest.mark.slow  # runs the model through seglab-predict and seglab.load
def test_a_tiny_confidence_keeps_every_pixel_and_one_near_1_voids_nearly_all(
    compose, images: Path, tmp_path: Path, cli
) -> None:
    checkpoint = _checkpoint(compose, tmp_path)  # synthetic data: class indices, void 255
    probabilities = _top_probabilities(checkpoint, images)
    for confidence, kept in (("0.0001", "100.0%"), ("0.9999", "0.0%")):
        output = tmp_path / f"pseudo-{confidence}"
        _, out = _predict(cli, checkpoint, images, output, f"confidence={confidence}")
        assert f"{kept} of" in out
        for stem, probs in probabilities.items():
            with Image.open(output / f"{stem}.png") as mask:
                stored = torch.from_numpy(np.asarray(mask).astype(np.int64))
            if confidence == "0.0001":
                assert torch.equal(stored, probs.argmax(dim=0))
            else:
                assert (stored == 255).float().mean() > 0.99


@pytest.mark.slow  # runs the model through seglab-predict and seglab.load
def test_binary_pseudo_masks_take_the_more_probable_side(
    compose, images: Path, tmp_path: Path, cli
) -> None:
    checkpoint = _checkpoint(
        compose,
        tmp_path,
        "mode=binary",
        "data=folder",
        f"data.root={tmp_path}",
        "data.mask_values=[0,255]",
        "data.ignore_index=128",
        "data.layout.mask_extension=.tif",
        head_shift=-0.2,  # the untrained head's sigmoid is about 0.55 everywhere
    )
    probabilities = _top_probabilities(checkpoint, images)
    foreground = torch.cat([p[0].flatten() for p in probabilities.values()])
    confidence = _between(torch.maximum(foreground, 1 - foreground))
    output = tmp_path / "pseudo"
    _predict(cli, checkpoint, images, output, f"confidence={confidence}", *INFERENCE_ARGS)
    for stem, probs in probabilities.items():
        p = probs[0]
        expected = torch.where(p > 0.5, 255, 0)
        expected[torch.maximum(p, 1 - p) < confidence] = 128
        with Image.open(output / f"{stem}.tif") as mask:
            assert torch.equal(torch.from_numpy(np.asarray(mask).astype(np.int64)), expected)
        # confident pixels of both sides, and unconfident ones
        assert {0, 128, 255} <= set(expected.unique().tolist())


@pytest.mark.slow
def test_a_self_training_round_is_predict_then_train_on_the_output(
    folder_checkpoint: Path, images: Path, tmp_path: Path, cli
) -> None:
    output = tmp_path / "pseudo"
    _predict(cli, folder_checkpoint, images, output, "confidence=0.4")
    code, _, err = cli(
        train_main,
        *FOLDER,
        *TINY_MODEL,
        f"data.root={tmp_path}",
        f"data.layout.image_dir={images}",
        f"data.layout.mask_dir={output}",
        # one folder of images, no split folders: validate on a share of them
        "data.splits.val_fraction=0.5",
        # an untrained model's pseudo-labels: few classes, mostly void below the confidence;
        # the label checks would rightly refuse them as a dataset
        "data.allow_absent_classes=true",
        "data.allow_void_heavy=true",
        "data.augment.crop_size=[32,32]",
        "data.augment.scale_range=null",
        "data.loader.batch_size=1",
        "data.loader.num_workers=0",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"paths.output_root={tmp_path / 'runs'}",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        cwd=tmp_path,
    )
    assert code == 0, err[-3000:]
    (run_dir,) = (tmp_path / "runs" / "train").iterdir()
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["pseudo_labels=true", "confidence=1.5"], "confidence=1.5 must be in (0, 1)"),
        (["pseudo_labels=true", "confidence=0"], "confidence=0 must be in (0, 1)"),
        (["confidence=0.9"], "confidence=0.9 only applies to pseudo-labels"),
        (
            ["pseudo_labels=true", "confidence=0.9", "data.ignore_index=255"],
            "data.ignore_index=255 is the stored value of class 'car'",
        ),
        (
            ["pseudo_labels=true", "data.layout.mask_extension=.jpg"],
            "data.layout.mask_extension=.jpg is no lossless image format",
        ),
        (["pseudo_labels=true", "mode=multilabel"], "mode=multilabel is not supported"),
    ],
)
def test_bad_pseudo_label_settings_are_refused_in_one_line_before_any_work(
    folder_checkpoint: Path,
    images: Path,
    tmp_path: Path,
    cli,
    overrides: list[str],
    message: str,
) -> None:
    output = tmp_path / "pseudo"
    code, _, err = cli(
        predict_main,
        f"ckpt_path={folder_checkpoint}",
        f"input={images}",
        f"output={output}",
        "device=cpu",
        *overrides,
        cwd=tmp_path,
    )
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not list(output.glob("*.png")) and not list(output.glob("*.jpg"))


def test_pseudo_labels_refuse_an_output_folder_of_input_images(
    folder_checkpoint: Path, images: Path, tmp_path: Path, cli
) -> None:
    own = tmp_path / "frames"
    own.mkdir()
    before = {}
    for path in images.glob("*.png"):
        before[own / path.name] = path.read_bytes()
        (own / path.name).write_bytes(before[own / path.name])
    code, _, err = cli(
        predict_main,
        f"ckpt_path={folder_checkpoint}",
        f"input={own}",
        f"output={own}",
        "pseudo_labels=true",
        cwd=tmp_path,
    )
    assert code == 2 and "holds input images" in err
    assert {path: path.read_bytes() for path in own.glob("*.png")} == before
