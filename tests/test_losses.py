import math
import re

import pytest
import torch

from seglab.losses import CrossEntropyLoss, DiceLoss, WeightedSumLoss

IGNORE = 255


def _logits_from_probs(*pixel_probs: list[float]) -> torch.Tensor:
    """Logits (1, C, 1, P) whose softmax is the given per-pixel probabilities."""
    probs = torch.tensor(pixel_probs, dtype=torch.float)
    return probs.log().T.reshape(1, probs.shape[1], 1, probs.shape[0])


def _random_batch_with_ignored_pixels() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 4, 5, generator=generator, requires_grad=True)
    target = torch.randint(0, 3, (2, 4, 5), generator=generator)
    ignored = torch.zeros_like(target, dtype=torch.bool)
    ignored[0, :2, :] = True
    ignored[1, 3, 1:4] = True
    return logits, target.masked_fill(ignored, IGNORE), ignored


def test_cross_entropy_with_class_weights_matches_hand_computation():
    # Softmax [1/4, 1/2, 1/4] at every pixel; the third pixel is ignored.
    logits = _logits_from_probs([0.25, 0.5, 0.25], [0.25, 0.5, 0.25], [0.6, 0.2, 0.2])
    target = torch.tensor([[[0, 1, IGNORE]]])
    loss = CrossEntropyLoss(class_weights=[2.0, 1.0, 1.0], ignore_index=IGNORE)

    # (w0 * -log(1/4) + w1 * -log(1/2)) / (w0 + w1)
    expected = (2 * math.log(4) + math.log(2)) / 3
    torch.testing.assert_close(loss(logits, target), torch.tensor(expected))


def test_label_smoothing_mixes_in_the_uniform_target():
    logits = _logits_from_probs([0.25, 0.5, 0.25])
    target = torch.tensor([[[1]]])

    plain = CrossEntropyLoss()(logits, target)
    smoothed = CrossEntropyLoss(label_smoothing=0.3)(logits, target)

    # 0.7 * -log(1/2) + 0.3 * mean_c(-log p_c) = 0.7 log 2 + 0.1 * (2 + 1 + 2) log 2
    torch.testing.assert_close(plain, torch.tensor(math.log(2)))
    torch.testing.assert_close(smoothed, torch.tensor(1.2 * math.log(2)))


@pytest.mark.parametrize(
    "loss",
    [
        CrossEntropyLoss(ignore_index=IGNORE),
        CrossEntropyLoss(class_weights=[1.0, 2.0, 3.0], ignore_index=IGNORE, label_smoothing=0.1),
        DiceLoss(ignore_index=IGNORE),
    ],
    ids=["ce", "ce-weighted-smoothed", "dice"],
)
def test_ignored_pixels_get_zero_gradient(loss):
    logits, target, ignored = _random_batch_with_ignored_pixels()

    loss(logits, target).backward()

    grad = logits.grad.movedim(1, -1)
    assert torch.all(grad[ignored] == 0)
    assert torch.all(grad[~ignored].abs().sum(-1) > 0)


@pytest.mark.parametrize(
    "loss",
    [
        CrossEntropyLoss(ignore_index=IGNORE),
        CrossEntropyLoss(class_weights=[1.0, 2.0, 3.0], ignore_index=IGNORE, label_smoothing=0.1),
        DiceLoss(ignore_index=IGNORE),
    ],
    ids=["ce", "ce-weighted-smoothed", "dice"],
)
def test_all_pixels_ignored_gives_zero_loss_and_finite_zero_gradient(loss):
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    target = torch.full((1, 2, 2), IGNORE)

    value = loss(logits, target)
    value.backward()

    assert value.item() == 0
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_cross_entropy_class_weights_are_a_buffer():
    loss = CrossEntropyLoss(class_weights=[1.0, 2.0])

    assert torch.equal(loss.state_dict()["class_weights"], torch.tensor([1.0, 2.0]))


def test_cross_entropy_rejects_class_weights_of_the_wrong_length():
    loss = CrossEntropyLoss(class_weights=[1.0, 2.0])

    with pytest.raises(ValueError, match="expected 3 class_weights .* got 2"):
        loss(torch.randn(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))


def test_dice_of_a_confident_correct_prediction_is_zero():
    target = torch.tensor([[[0, 1, 2], [2, IGNORE, 1]]])
    logits = 50.0 * torch.nn.functional.one_hot(target.clamp_max(2), 3).movedim(-1, 1).float()

    loss = DiceLoss(ignore_index=IGNORE)(logits, target)

    assert loss.item() < 1e-6


def test_dice_matches_hand_computation():
    # Class-0 probabilities 3/4, 1/2, 1/4 for targets 0, 0, 1; the last pixel is ignored.
    logits = _logits_from_probs([0.75, 0.25], [0.5, 0.5], [0.25, 0.75], [0.9, 0.1])
    target = torch.tensor([[[0, 0, 1, IGNORE]]])

    # class 0: I = 5/4, P = 3/2, T = 2 | class 1: I = 3/4, P = 3/2, T = 1
    no_smooth = DiceLoss(ignore_index=IGNORE, smooth=0.0)(logits, target)
    smooth = DiceLoss(ignore_index=IGNORE, smooth=1.0)(logits, target)

    torch.testing.assert_close(no_smooth, torch.tensor(1 - (5 / 7 + 3 / 5) / 2))
    torch.testing.assert_close(smooth, torch.tensor(1 - (7 / 9 + 5 / 7) / 2))


def test_dice_present_classes_only_leaves_absent_classes_out_of_the_mean():
    # Same probabilities as above plus a class 2 that is neither in the target nor predicted.
    logits = _logits_from_probs([0.75, 0.25, 0.0], [0.5, 0.5, 0.0], [0.25, 0.75, 0.0])
    target = torch.tensor([[[0, 0, 1]]])

    present_only = DiceLoss(smooth=0.0)(logits, target)
    all_classes = DiceLoss(smooth=0.0, present_classes_only=False)(logits, target)

    # With smooth=0 the absent class has Dice 0 / eps = 0, i.e. a loss term of 1.
    torch.testing.assert_close(present_only, torch.tensor(1 - (5 / 7 + 3 / 5) / 2))
    torch.testing.assert_close(all_classes, torch.tensor((2 / 7 + 2 / 5 + 1) / 3))


@pytest.mark.parametrize("loss", [CrossEntropyLoss(), DiceLoss()], ids=["ce", "dice"])
def test_shape_mismatch_names_expected_and_received_shapes(loss):
    logits = torch.randn(2, 3, 4, 4)
    target = torch.zeros(2, 4, 5, dtype=torch.long)

    message = (
        "expected target (N, H, W) = (2, 4, 4) to match logits (N, C, H, W) = (2, 3, 4, 4), "
        "got target (2, 4, 5)"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        loss(logits, target)


@pytest.mark.parametrize("loss", [CrossEntropyLoss(), DiceLoss()], ids=["ce", "dice"])
def test_float_target_is_rejected(loss):
    with pytest.raises(TypeError, match="torch.int64, got torch.float32"):
        loss(torch.randn(1, 2, 2, 2), torch.zeros(1, 2, 2))


def test_weighted_sum_is_the_weighted_sum_of_its_terms():
    logits, target, _ = _random_batch_with_ignored_pixels()
    ce, dice = CrossEntropyLoss(ignore_index=IGNORE), DiceLoss(ignore_index=IGNORE)
    loss = WeightedSumLoss({"ce": ce, "dice": dice}, weights={"dice": 2.5})

    total = loss(logits, target)

    ce_value, dice_value = ce(logits, target), dice(logits, target)
    torch.testing.assert_close(total, 1.0 * ce_value + 2.5 * dice_value)
    assert set(loss.last_terms) == {"ce", "dice"}
    torch.testing.assert_close(loss.last_terms["ce"], ce_value.detach())
    torch.testing.assert_close(loss.last_terms["dice"], dice_value.detach())
    assert not any(term.requires_grad for term in loss.last_terms.values())


def test_weighted_sum_rejects_weights_for_unknown_losses():
    with pytest.raises(ValueError, match=re.escape("unknown losses ['focal']")):
        WeightedSumLoss({"ce": CrossEntropyLoss()}, weights={"ce": 1.0, "focal": 0.5})
