"""Boundary IoU and HD95 against independent numpy versions: the reference's iterated 3x3
erosion of each class mask, and brute-force distances between contour pixels."""

import copy
import json
import math
import runpy
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from omegaconf import DictConfig, OmegaConf
from tiny import TINY

from seglab.config.spec import resolve_spec
from seglab.config.upgrade import upgrade_config
from seglab.errors import SeglabError
from seglab.metrics.boundary import BoundaryMetric, boundary_width
from seglab.workflows.build import build_boundary_metric, build_datamodule, build_task
from seglab.workflows.evaluation import format_report

VOID = 9

# two 8x10 images of classes 0-2 and void (9); class 3 is in neither target nor prediction
TARGET = np.array(
    [
        [
            [1, 1, 1, 0, 0, 0, 0, 0, 2, 2],
            [1, 1, 1, 0, 0, 0, 0, 0, 2, 2],
            [1, 1, 1, 0, 0, 0, 0, 0, 2, 2],
            [0, 0, 0, 0, 2, 2, 2, 0, 0, 0],
            [0, 0, 0, 0, 2, 2, 2, 0, 0, 0],
            [0, 0, 9, 9, 2, 2, 2, 0, 0, 0],
            [0, 0, 9, 9, 0, 0, 0, 0, 1, 1],
            [0, 0, 0, 0, 0, 0, 0, 0, 1, 1],
        ],
        [
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            [0, 1, 1, 1, 1, 1, 1, 1, 1, 0],
            [0, 1, 1, 1, 1, 1, 1, 1, 1, 0],
            [0, 1, 1, 9, 9, 9, 1, 1, 1, 0],
            [0, 1, 1, 1, 1, 1, 1, 1, 1, 0],
            [0, 1, 1, 1, 1, 1, 1, 1, 1, 0],
            [0, 1, 1, 1, 1, 1, 1, 1, 1, 0],
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ],
    ]
)
PREDS = np.array(
    [
        [
            [1, 1, 0, 0, 0, 0, 0, 0, 0, 2],
            [1, 1, 0, 0, 0, 0, 0, 0, 2, 2],
            [1, 1, 1, 0, 0, 0, 0, 0, 2, 2],
            [0, 0, 0, 0, 0, 2, 2, 2, 0, 0],
            [0, 0, 0, 0, 2, 2, 2, 2, 0, 0],
            [0, 0, 2, 2, 2, 2, 2, 0, 0, 0],
            [0, 0, 1, 1, 0, 0, 0, 0, 0, 1],
            [0, 0, 0, 0, 0, 0, 0, 0, 1, 1],
        ],
        [
            [1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
            [1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
            [0, 0, 1, 1, 1, 1, 1, 1, 1, 0],
            [0, 0, 1, 2, 0, 1, 1, 1, 1, 0],
            [0, 0, 1, 1, 1, 1, 1, 1, 1, 0],
            [0, 0, 1, 1, 1, 2, 2, 1, 1, 0],
            [0, 0, 1, 1, 1, 1, 1, 1, 1, 0],
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ],
    ]
)


def reference_band(mask: np.ndarray, width: int) -> np.ndarray:
    """The reference's inner band: pad the mask with one row and column of zeros, erode it
    ``width`` times by a 3x3 square (beyond the padding counts as set, as in OpenCV's erode),
    and keep the mask's pixels that the erosion removed."""
    eroded = np.pad(mask, 1)
    for _ in range(width):
        around = np.pad(eroded, 1, constant_values=True)
        rows, cols = eroded.shape
        eroded = np.logical_and.reduce(
            [around[dy : dy + rows, dx : dx + cols] for dy in range(3) for dx in range(3)]
        )
    return mask & ~eroded[1:-1, 1:-1]


def reference_counts(
    target: np.ndarray, preds: np.ndarray, classes: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Band intersection and union per class, summed over images; void is in neither mask."""
    intersection, union = np.zeros(classes, int), np.zeros(classes, int)
    for t, p in zip(target, preds, strict=True):
        for c in range(classes):
            truth = reference_band(t == c, width)
            predicted = reference_band((p == c) & (t != VOID), width)
            intersection[c] += (truth & predicted).sum()
            union[c] += (truth | predicted).sum()
    return intersection, union


def metric(**options) -> BoundaryMetric:
    return BoundaryMetric(num_classes=4, ignore_index=VOID, **options)


@pytest.mark.parametrize("dilation_ratio", [0.02, 0.1, 0.25])
def test_boundary_iou_counts_match_the_reference_erosion(dilation_ratio: float) -> None:
    width = boundary_width(8, 10, dilation_ratio)
    intersection, union = reference_counts(TARGET, PREDS, 4, width)
    boundary = metric(dilation_ratio=dilation_ratio)
    boundary.update(torch.from_numpy(PREDS), torch.from_numpy(TARGET))
    scores = boundary.compute()

    assert boundary.intersection.tolist() == intersection.tolist()
    assert boundary.union.tolist() == union.tolist()
    expected = [i / u if u else math.nan for i, u in zip(intersection, union, strict=True)]
    iou = torch.tensor(expected).float()
    torch.testing.assert_close(scores["BoundaryIoU"], iou, equal_nan=True)
    # class 3 is in neither mask: no score, and left out of the mean
    assert math.isnan(scores["BoundaryIoU"][3])
    torch.testing.assert_close(scores["mBoundaryIoU"], torch.tensor(expected[:3]).mean().float())


def test_the_widths_differ_between_the_parametrised_ratios() -> None:
    """So that the test above covers bands of one and of several pixels."""
    assert [boundary_width(8, 10, r) for r in (0.02, 0.1, 0.25)] == [1, 1, 3]


def test_band_width_is_the_reference_rounding_of_the_diagonal_share() -> None:
    # 360x480 has a 600-pixel diagonal; 3x4 one of 5, whose 2.5 rounds half to even
    assert boundary_width(360, 480, 0.02) == 12
    assert boundary_width(3, 4, 0.5) == 2
    assert boundary_width(3, 4, 0.7) == 4
    assert boundary_width(3, 4, 0.01) == 1


def test_predictions_on_void_pixels_change_nothing() -> None:
    other = PREDS.copy()
    other[TARGET == VOID] = 3
    first, second = metric(), metric()
    first.update(torch.from_numpy(PREDS), torch.from_numpy(TARGET))
    second.update(torch.from_numpy(other), torch.from_numpy(TARGET))

    assert first.intersection.tolist() == second.intersection.tolist()
    assert first.union.tolist() == second.union.tolist()
    assert second.union[3] == 0, "class 3, predicted only on void pixels, is not counted"


def test_two_batches_accumulate_as_one_batch_of_both() -> None:
    both, split = metric(dilation_ratio=0.25), metric(dilation_ratio=0.25)
    both.update(torch.from_numpy(PREDS), torch.from_numpy(TARGET))
    for i in range(2):
        split.update(torch.from_numpy(PREDS[i : i + 1]), torch.from_numpy(TARGET[i : i + 1]))

    assert split.intersection.tolist() == both.intersection.tolist()
    assert split.union.tolist() == both.union.tolist()
    torch.testing.assert_close(split.compute(), both.compute(), equal_nan=True)


def test_logits_are_scored_by_their_argmax() -> None:
    logits = torch.nn.functional.one_hot(torch.from_numpy(PREDS), 4).permute(0, 3, 1, 2).float()
    from_logits, from_labels = metric(), metric()
    from_logits.update(logits * 3 - 1, torch.from_numpy(TARGET))
    from_labels.update(torch.from_numpy(PREDS), torch.from_numpy(TARGET))

    assert from_logits.intersection.tolist() == from_labels.intersection.tolist()
    assert from_logits.union.tolist() == from_labels.union.tolist()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dilation_ratio": 0}, "must be in"),
        ({"dilation_ratio": 1.5}, "must be in"),
        ({"dilation_ratio": "wide"}, "must be a number"),
        ({"hd95": "yes"}, "must be true or false"),
    ],
)
def test_bad_options_are_refused(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        metric(**options)


# --- HD95 -------------------------------------------------------------------------------------


def reference_hd95(target: np.ndarray, preds: np.ndarray, classes: int) -> list[float]:
    """Per class, the mean over images holding the class in both masks of the larger directed
    95th percentile of nearest distances between contour pixels (bands of width 1)."""
    total, images = np.zeros(classes), np.zeros(classes)
    for t, p in zip(target, preds, strict=True):
        for c in range(classes):
            truth, predicted = t == c, (p == c) & (t != VOID)
            if not truth.any() or not predicted.any():
                continue
            a = np.argwhere(reference_band(truth, 1))
            b = np.argwhere(reference_band(predicted, 1))
            distances = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
            total[c] += max(
                np.percentile(distances.min(axis=1), 95), np.percentile(distances.min(axis=0), 95)
            )
            images[c] += 1
    return [t / n if n else math.nan for t, n in zip(total, images, strict=True)]


def test_hd95_matches_brute_force_distances() -> None:
    rng = np.random.default_rng(0)
    # blocky random maps of 5 classes, and a prediction that misses some and shifts the rest
    target = rng.integers(0, 4, (3, 6, 8)).repeat(4, axis=1).repeat(4, axis=2)
    target[0, :5, :7] = VOID
    preds = np.roll(target, (3, -2), axis=(1, 2))
    preds[preds == VOID] = 0
    preds[1][preds[1] == 2] = 4
    preds[2, 10:, 10:] = 4
    boundary = BoundaryMetric(num_classes=5, ignore_index=VOID, hd95=True)
    for i in range(3):
        boundary.update(torch.from_numpy(preds[i : i + 1]), torch.from_numpy(target[i : i + 1]))
    scores = boundary.compute()

    expected = reference_hd95(target, preds, 5)
    # class 2 is in all three targets but the second prediction has none: two images count
    assert boundary.distance_images.tolist() == [3, 3, 2, 3, 0]
    torch.testing.assert_close(scores["HD95"], torch.tensor(expected).float(), equal_nan=True)
    assert math.isnan(scores["HD95"][4]), "only ever predicted: no distance"
    torch.testing.assert_close(scores["mHD95"], torch.tensor(expected[:4]).mean().float())


def test_hd95_is_only_computed_when_asked() -> None:
    boundary = metric()
    boundary.update(torch.from_numpy(PREDS), torch.from_numpy(TARGET))

    assert set(boundary.compute()) == {"BoundaryIoU", "mBoundaryIoU"}


# --- the metrics.boundary node ------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped(compose) -> DictConfig:
    """The train config as shipped, composed once for the module (a composition takes ~0.5 s)."""
    return compose("train")


@pytest.fixture
def small(shipped: DictConfig, tmp_path):
    """A copy of the shipped config on 4 synthetic images a split, ``node`` (dotted key to
    value) set in it, and its datamodule."""

    def composed(**node):
        cfg = copy.deepcopy(shipped)
        cfg.paths.output_dir, cfg.paths.cache_dir = str(tmp_path), str(tmp_path / "cache")
        for split in ("train", "val", "test"):
            cfg.data[f"num_{split}"] = 4
        for key, value in node.items():
            OmegaConf.update(cfg, key.replace("__", "."), value, force_add=True)
        return cfg, build_datamodule(resolve_spec(cfg))

    return composed


def test_the_shipped_node_builds_the_metric_for_the_data(small) -> None:
    cfg, datamodule = small()
    boundary = build_boundary_metric(resolve_spec(cfg), datamodule)

    assert boundary.num_classes == len(datamodule.classes) == cfg.data.num_classes
    assert boundary.ignore_index == cfg.data.ignore_index
    assert (boundary.dilation_ratio, boundary.hd95) == (0.02, False)
    assert set(build_task(resolve_spec(cfg), datamodule).boundary_metrics) == {"val", "test"}


def test_a_disabled_node_builds_no_metric(small) -> None:
    cfg, datamodule = small(metrics__boundary__enabled=False)

    assert build_boundary_metric(resolve_spec(cfg), datamodule) is None
    assert not build_task(resolve_spec(cfg), datamodule).boundary_metrics


def test_a_run_saved_before_the_node_gets_the_shipped_defaults(small) -> None:
    cfg, datamodule = small()
    stored = OmegaConf.to_container(cfg, resolve=True)
    del stored["metrics"]
    upgraded = OmegaConf.create(upgrade_config(stored))
    assert build_boundary_metric(resolve_spec(upgraded), datamodule).dilation_ratio == 0.02


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("dilation_ratio", 0, r"^metrics.boundary.dilation_ratio=0 must be in \(0, 1\)"),
        ("hd95", "sometimes", "^metrics.boundary.hd95='sometimes' must be true or false"),
        ("enabled", 1, "^metrics.boundary.enabled=1 must be true or false"),
        ("width", 3, "^metrics.boundary.width is not an option; the options are: enabled,"),
    ],
)
def test_a_bad_option_is_one_line_naming_the_key(
    shipped: DictConfig, key: str, value: object, message: str
) -> None:
    cfg = copy.deepcopy(shipped)
    OmegaConf.update(cfg, f"metrics.boundary.{key}", value, force_add=True)
    data = SimpleNamespace(classes=list(cfg.data.classes), ignore_index=cfg.data.ignore_index)
    with pytest.raises(SeglabError, match=message) as error:
        build_boundary_metric(resolve_spec(cfg), data)
    assert "\n" not in str(error.value)


def test_eval_report_adds_boundary_columns_when_computed() -> None:
    report = {
        "per_class": {
            "road": {"IoU": 0.5, "Dice": 0.66666, "BoundaryIoU": 0.25, "HD95": 3.14159},
            "bicyclist": {"IoU": 0.0, "Dice": 0.0, "BoundaryIoU": 0.0, "HD95": None},
        },
        "mIoU": 0.25,
        "mDice": 0.33333,
        "mBoundaryIoU": 0.125,
        "mHD95": 3.14159,
        "pixel_accuracy": 0.9,
        "split": "test",
    }
    assert format_report(report).splitlines() == [
        "class         IoU    Dice  BoundaryIoU  HD95",
        "road       0.5000  0.6667       0.2500  3.14",
        "bicyclist  0.0000  0.0000       0.0000     -",
        "--------------------------------------------",
        "mean       0.2500  0.3333       0.1250  3.14",
        "pixel accuracy: 0.9000   split: test",
    ]


# --- scripts/benchmarks/boundary_cost.py ----------------------------------------------------------

SCRIPT = Path(__file__).parents[2] / "scripts" / "benchmarks" / "boundary_cost.py"


@pytest.mark.slow
def test_the_cost_script_times_each_variant_on_a_tiny_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "cost.json"
    overrides = [o for o in TINY if o != "trainer.enable_model_summary=false"]
    monkeypatch.chdir(tmp_path)
    arguments = ["--repeats", "2", "--output", str(output), *overrides, "data.num_val=4"]
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *arguments])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    assert exit_info.value.code == 0
    results = json.loads(output.read_text())
    assert results["val_images"] == 4
    assert set(results["seconds"]) == {"none", "BoundaryIoU", "BoundaryIoU+HD95"}
    for name, seconds in results["seconds"].items():
        assert len(seconds["runs"]) == 2 and all(run > 0 for run in seconds["runs"])
        median = results["ratio_to_none"][name] * results["seconds"]["none"]["median"]
        assert seconds["median"] == pytest.approx(median)
