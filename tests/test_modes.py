"""Task modes (seglab/task_modes.py): labels and probabilities from logits, the counts and scores of
each mode against hand computations, and the one-line refusals of a bad mode or threshold."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from seglab.config.spec import resolve_spec
from seglab.config.upgrade import upgrade_config
from seglab.errors import SeglabError
from seglab.inference.inferer import TTA, Inferer
from seglab.task_modes import Binary, Multiclass, Multilabel, make_mode, task_mode
from seglab.workflows.build import build_datamodule, build_model
from seglab.workflows.mounting import mount_checkpoint_config

IGNORE = 255


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_multiclass_labels_are_the_argmax_and_probabilities_a_softmax() -> None:
    logits = torch.tensor([[[[2.0, -1.0]], [[1.0, 3.0]], [[0.0, 0.0]]]])  # (1, 3, 1, 2)
    mode = Multiclass()
    assert mode.channels(3) == 3
    assert torch.equal(mode.labels(logits), torch.tensor([[[0, 1]]]))
    probabilities = mode.probabilities(logits)
    assert torch.allclose(probabilities.sum(1), torch.ones(1, 1, 2))
    assert torch.equal(mode.labels_of_probabilities(probabilities), torch.tensor([[[0, 1]]]))
    assert torch.allclose(mode.probabilities(mode.logits(probabilities)), probabilities)


def test_binary_labels_threshold_one_sigmoid_channel() -> None:
    # probabilities 0.2, 0.55, 0.7, 0.95 on one channel
    logits = torch.tensor([logit(p) for p in (0.2, 0.55, 0.7, 0.95)]).view(1, 1, 2, 2)
    assert Binary().channels(2) == 1
    assert torch.equal(Binary().labels(logits), torch.tensor([[[0, 1], [1, 1]]]))
    assert torch.equal(Binary(threshold=0.6).labels(logits), torch.tensor([[[0, 0], [1, 1]]]))
    probabilities = Binary().probabilities(logits)
    assert torch.allclose(probabilities.flatten(), torch.tensor([0.2, 0.55, 0.7, 0.95]))
    assert torch.equal(
        Binary(threshold=0.6).labels_of_probabilities(probabilities[0], dim=0),
        torch.tensor([[0, 0], [1, 1]]),
    )
    assert torch.allclose(Binary().logits(probabilities), logits, atol=1e-5)


def test_multilabel_labels_threshold_every_channel_and_keep_the_class_axis() -> None:
    logits = torch.tensor([[[[3.0, -3.0]], [[0.5, 0.1]]]])  # (1, 2, 1, 2)
    mode = Multilabel(threshold=0.55)
    assert mode.channels(2) == 2 and mode.class_axis
    # sigmoid(0.5) = 0.62 > 0.55, sigmoid(0.1) = 0.52 < 0.55
    assert torch.equal(mode.labels(logits), torch.tensor([[[[1, 0]], [[1, 0]]]]))


def test_multilabel_scores_are_each_class_channel_binary_iou_over_the_split() -> None:
    metric = Multilabel().metric(num_classes=2, ignore_index=IGNORE)
    # two batches of one 2x3 image: labels and targets per class channel, 255 = void
    batches = [
        (
            [[[1, 1, 0], [0, 0, 1]], [[0, 0, 0], [1, 1, 1]]],
            [[[1, 0, 0], [0, IGNORE, 1]], [[0, 0, 1], [1, 0, 1]]],
        ),
        (
            [[[0, 0, 0], [1, 1, 1]], [[1, 1, 1], [1, 1, 1]]],
            [[[0, 0, 1], [1, 1, 1]], [[1, 1, 1], [1, 1, IGNORE]]],
        ),
    ]
    for labels, target in batches:
        metric.update(torch.tensor([labels]), torch.tensor([target]))
    scores = Multilabel().scores(metric.compute())
    # class 0: batch 1 tp 2 (0,0),(1,2); fp 1 (0,1); void (1,1) left out
    #          batch 2 tp 3; fn 1 (0,2)                     -> tp 5, fp 1, fn 1
    # class 1: batch 1 tp 2 (1,0),(1,2); fp 1 (1,1); fn 1 (0,2)
    #          batch 2 tp 5; void (1,2) left out            -> tp 7, fp 1, fn 1
    expected_iou = torch.tensor([5 / 7, 7 / 9])
    expected_dice = torch.tensor([10 / 12, 14 / 16])
    assert torch.allclose(scores["IoU"], expected_iou)
    assert torch.allclose(scores["Dice"], expected_dice)
    assert torch.isclose(scores["mIoU"], expected_iou.mean())
    assert torch.isclose(scores["mDice"], expected_dice.mean())
    # right decisions over the 22 counted channel pixels: class 0 has 9 (5 tp + 4 tn), class 1
    # has 9 (7 tp + 2 tn)
    assert torch.isclose(scores["pixel_accuracy"], torch.tensor(18 / 22))
    assert scores["present"].tolist() == [True, True]


def test_binary_scores_count_both_classes_in_one_confusion_matrix() -> None:
    mode = Binary()
    metric = mode.metric(num_classes=2, ignore_index=IGNORE)
    logits = torch.tensor([[[[2.0, -2.0, 2.0, -2.0]]]])  # labels 1 0 1 0
    target = torch.tensor([[[1, 1, 0, IGNORE]]])
    metric.update(mode.labels(logits), target)
    scores = mode.scores(metric.compute())
    # background: tp 0, fp 1 (the 1 predicted 0), fn 1 (the 0 predicted 1); foreground: tp 1
    assert torch.allclose(scores["IoU"], torch.tensor([0.0, 1 / 3]))


@pytest.mark.parametrize("mode", ["binary", "multilabel"])
def test_tta_averages_sigmoid_probabilities(mode: str) -> None:
    """Two passes (the image and its mirror) of a model that only sees the pixels' values: the
    averaged probabilities are the mean of the two passes' sigmoids, per channel."""
    model = nn.Conv2d(1, 1 if mode == "binary" else 2, 1)
    with torch.no_grad():
        model.weight.fill_(2.0)
        model.bias.fill_(-1.0)
    inferer = Inferer(model, tta=TTA(hflip=True), mode=make_mode(mode))
    image = torch.tensor([[[[0.0, 1.0, 3.0]]]])
    plain = torch.sigmoid(2 * image - 1)
    mirrored = torch.sigmoid(2 * image.flip(-1) - 1).flip(-1)  # the same per-pixel model
    expected = ((plain + mirrored) / 2).expand(1, model.out_channels, 1, 3)
    assert torch.allclose(inferer.probabilities(image), expected)
    assert torch.allclose(inferer.logits(image), torch.logit(expected), atol=1e-5)


def test_multiclass_tta_still_averages_softmax_probabilities() -> None:
    model = nn.Conv2d(1, 2, 1)
    inferer = Inferer(model, tta=TTA(hflip=True))
    image = torch.randn(1, 1, 2, 3)
    with torch.no_grad():
        expected = (model(image).softmax(1) + model(image.flip(-1)).flip(-1).softmax(1)) / 2
    assert torch.allclose(inferer.probabilities(image), expected, atol=1e-6)


@pytest.mark.parametrize("threshold", ["0", "1", "1.5", "-0.2"])
def test_a_threshold_outside_zero_one_is_refused_naming_the_key(compose, threshold) -> None:
    cfg = compose("train", "mode=binary", "data=synthetic_binary", f"threshold={threshold}")
    with pytest.raises(SeglabError, match=rf"^threshold={threshold} must be in \(0, 1\)"):
        build_datamodule(resolve_spec(cfg))


def test_an_unknown_mode_is_refused_naming_the_modes(compose) -> None:
    cfg = compose("train", "mode=softmax")
    with pytest.raises(SeglabError, match="^mode=softmax is not one of: multiclass, binary"):
        build_model(resolve_spec(cfg))


def test_binary_mode_with_more_than_two_classes_is_refused_before_the_data(compose) -> None:
    cfg = compose("train", "mode=binary")  # data=synthetic: four classes
    with pytest.raises(SeglabError) as error:
        build_datamodule(resolve_spec(cfg))
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("mode=binary scores background and foreground")
    assert "data.num_classes=4" in message


@pytest.mark.parametrize(
    ("overrides", "channels"),
    [
        ([], 4),
        (["mode=binary", "data=synthetic_binary"], 1),
        (["mode=multilabel", "data=synthetic_multilabel"], 3),
    ],
)
def test_the_model_head_has_the_channels_of_the_mode(compose, overrides, channels) -> None:
    cfg = compose("train", "model.encoder.widths=[8,16,32]", *overrides)
    assert task_mode(cfg).channels(cfg.data.num_classes) == channels
    assert build_model(resolve_spec(cfg))(torch.zeros(1, 3, 32, 32)).shape == (1, channels, 32, 32)


def test_a_checkpoint_saved_before_modes_is_multiclass_and_takes_a_threshold(
    compose, tmp_path
) -> None:
    run = compose("train", f"paths.output_dir={tmp_path}")
    config = OmegaConf.to_container(run, resolve=True)
    del config["mode"], config["threshold"]
    mount_checkpoint_config(upgrade_config(config))  # as `load_checkpoint` gives it
    cfg = compose("eval", "ckpt_path=x.ckpt", "threshold=0.3")
    assert (cfg.mode, cfg.threshold) == ("multiclass", 0.3)
    assert isinstance(task_mode(cfg), Multiclass)
