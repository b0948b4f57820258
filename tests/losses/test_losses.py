import math
import re
from collections.abc import Callable

import pytest
import torch

from seglab.losses import (
    MODES,
    BinaryCrossEntropyLoss,
    CrossEntropyLoss,
    DiceLoss,
    FocalLoss,
    LovaszLoss,
    TverskyLoss,
    WeightedSumLoss,
)

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


# --- task modes ------------------------------------------------------------------------------

CHANNELS = {"multiclass": 3, "binary": 1, "multilabel": 3}
#: name -> (the modes it fits, a factory of the loss given the mode)
FAMILIES: dict[str, tuple[tuple[str, ...], Callable[[str], torch.nn.Module]]] = {
    "ce": (("multiclass",), lambda mode: CrossEntropyLoss(mode=mode, ignore_index=IGNORE)),
    "ce-weighted-smoothed": (
        ("multiclass",),
        lambda mode: CrossEntropyLoss(
            class_weights=[1.0, 2.0, 3.0], ignore_index=IGNORE, label_smoothing=0.1, mode=mode
        ),
    ),
    "bce": (
        ("binary", "multilabel"),
        lambda mode: BinaryCrossEntropyLoss(mode=mode, ignore_index=IGNORE),
    ),
    "bce-pos_weight": (
        ("binary", "multilabel"),
        lambda mode: BinaryCrossEntropyLoss(
            mode=mode, ignore_index=IGNORE, pos_weight=[2.0] * CHANNELS.get(mode, 1)
        ),
    ),
    "focal": (MODES, lambda mode: FocalLoss(mode=mode, ignore_index=IGNORE)),
    "focal-alpha": (
        MODES,
        lambda mode: FocalLoss(
            mode=mode,
            ignore_index=IGNORE,
            gamma=1.5,
            alpha=[0.2, 0.5, 0.3] if mode == "multiclass" else 0.25,
        ),
    ),
    # a slope of (1 - p_t)^gamma that is infinite where a void pixel is confident
    "focal-gamma-half": (
        MODES,
        lambda mode: FocalLoss(mode=mode, ignore_index=IGNORE, gamma=0.5),
    ),
    "dice": (MODES, lambda mode: DiceLoss(ignore_index=IGNORE, mode=mode)),
    "dice-all-classes": (
        MODES,
        lambda mode: DiceLoss(ignore_index=IGNORE, present_classes_only=False, mode=mode),
    ),
    "tversky": (MODES, lambda mode: TverskyLoss(mode=mode, ignore_index=IGNORE)),
    "lovasz": (MODES, lambda mode: LovaszLoss(mode=mode, ignore_index=IGNORE)),
    "lovasz-per-image": (
        MODES,
        lambda mode: LovaszLoss(mode=mode, ignore_index=IGNORE, per_image=True),
    ),
}
FITTING = [(name, mode) for name, (fits, _) in FAMILIES.items() for mode in fits]
UNFIT = [(name, mode) for name, (fits, _) in FAMILIES.items() for mode in MODES if mode not in fits]


def _mode_batch(mode: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random logits, a target of ``mode`` with void pixels, and where the logits are void.

    In multilabel mode some pixels are void in every channel and some in one channel only."""
    generator = torch.Generator().manual_seed(seed)
    channels = CHANNELS[mode]
    logits = torch.randn(2, channels, 4, 5, generator=generator)
    void = torch.zeros(2, 4, 5, dtype=torch.bool)
    void[0, :2, :] = True
    void[1, 3, 1:4] = True
    if mode == "multilabel":
        target = torch.randint(0, 2, (2, channels, 4, 5), generator=generator)
        void = void.unsqueeze(1).expand_as(target).clone()
        void[1, 0, 0, :3] = True
        void[0, 2, 3, 4] = True
        return logits, target.masked_fill(void, IGNORE), void
    target = torch.randint(0, max(channels, 2), (2, 4, 5), generator=generator)
    return logits, target.masked_fill(void, IGNORE), void.unsqueeze(1).expand_as(logits)


def _value_and_grad(loss, logits, target) -> tuple[torch.Tensor, torch.Tensor]:
    logits = logits.clone().requires_grad_(True)
    value = loss(logits, target)
    value.backward()
    return value.detach(), logits.grad


@pytest.mark.parametrize(("name", "mode"), FITTING, ids=[f"{n}-{m}" for n, m in FITTING])
def test_void_logits_change_neither_the_loss_nor_its_gradient(name, mode):
    loss = FAMILIES[name][1](mode)
    logits, target, void = _mode_batch(mode)
    value, grad = _value_and_grad(loss, logits, target)

    # extreme values at the void entries only: random, and confident of one class or none
    confident = torch.full_like(logits, -1000.0)
    for noise in (
        1000 * torch.randn(logits.shape, generator=torch.Generator().manual_seed(1)),
        confident,
        confident.index_fill(1, torch.tensor([0]), 1000.0),
    ):
        changed = _value_and_grad(loss, torch.where(void, noise, logits), target)
        torch.testing.assert_close(changed, (value, grad))
    assert torch.all(grad[void] == 0)
    assert grad[~void].abs().sum() > 0


@pytest.mark.parametrize(("name", "mode"), FITTING, ids=[f"{n}-{m}" for n, m in FITTING])
def test_a_batch_of_void_pixels_gives_zero_loss_and_zero_gradient(name, mode):
    logits, target, _ = _mode_batch(mode)

    value, grad = _value_and_grad(FAMILIES[name][1](mode), logits, torch.full_like(target, IGNORE))

    assert value.item() == 0
    assert torch.equal(grad, torch.zeros_like(grad))


@pytest.mark.parametrize(("name", "mode"), UNFIT, ids=[f"{n}-{m}" for n, m in UNFIT])
def test_a_loss_refuses_a_mode_it_does_not_fit_in_one_line(name, mode):
    instead = "loss=ce" if mode == "multiclass" else "loss=bce"
    with pytest.raises(ValueError, match=f"does not fit mode={mode}; use {instead}") as error:
        FAMILIES[name][1](mode)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_an_unknown_mode_is_refused_naming_the_modes(name):
    with pytest.raises(ValueError, match="mode=multi is not one of: multiclass, binary, multil"):
        FAMILIES[name][1]("multi")


@pytest.mark.parametrize(("name", "mode"), FITTING, ids=[f"{n}-{m}" for n, m in FITTING])
def test_a_target_of_another_mode_is_refused_naming_both_shapes(name, mode):
    loss = FAMILIES[name][1](mode)
    logits = torch.randn(2, CHANNELS[mode], 4, 4)
    if mode == "multilabel":  # the (N, H, W) target of the other modes
        target, message = (
            torch.zeros(2, 4, 4, dtype=torch.long),
            (
                "expected target (N, C, H, W) = (2, 3, 4, 4) to match logits (N, C, H, W) = "
                "(2, 3, 4, 4), got target (2, 4, 4)"
            ),
        )
    else:  # a multilabel target
        target, message = (
            torch.zeros(2, CHANNELS[mode], 4, 4, dtype=torch.long),
            (
                f"expected target (N, H, W) = (2, 4, 4) to match logits (N, C, H, W) = "
                f"(2, {CHANNELS[mode]}, 4, 4), got target (2, {CHANNELS[mode]}, 4, 4)"
            ),
        )
    with pytest.raises(ValueError, match=re.escape(message)):
        loss(logits, target)


@pytest.mark.parametrize("name", [n for n, (fits, _) in FAMILIES.items() if "binary" in fits])
def test_binary_mode_refuses_logits_of_several_channels(name):
    message = "mode=binary expects logits (N, 1, H, W) (one foreground channel), got logits (2, 3"
    with pytest.raises(ValueError, match=re.escape(message)):
        FAMILIES[name][1]("binary")(torch.randn(2, 3, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long))


# --- binary cross-entropy and focal loss --------------------------------------------------------


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_bce_pos_weight_per_class_matches_the_formula_written_out():
    # multilabel, 2 channels x 3 pixels; the entry (channel 1, pixel 2) is void
    probs = [[0.9, 0.3, 0.6], [0.2, 0.7, 0.5]]
    labels = [[1, 0, 1], [0, 1, IGNORE]]
    logits = torch.tensor([[_logit(p) for p in row] for row in probs]).view(1, 2, 1, 3)
    target = torch.tensor(labels).view(1, 2, 1, 3)
    pos_weight = [3.0, 0.5]

    loss = BinaryCrossEntropyLoss(mode="multilabel", ignore_index=IGNORE, pos_weight=pos_weight)

    # -[w y log p + (1 - y) log(1 - p)], averaged over the 5 labeled entries
    terms = [
        -(pos_weight[c] * y * math.log(p) + (1 - y) * math.log(1 - p))
        for c in range(2)
        for p, y in zip(probs[c], labels[c], strict=True)
        if y != IGNORE
    ]
    torch.testing.assert_close(loss(logits, target), torch.tensor(sum(terms) / 5))


def test_bce_refuses_pos_weight_of_the_wrong_length():
    loss = BinaryCrossEntropyLoss(mode="multilabel", pos_weight=[1.0, 2.0])

    with pytest.raises(ValueError, match="expected 3 pos_weight .* got 2"):
        loss(torch.randn(1, 3, 2, 2), torch.zeros(1, 3, 2, 2, dtype=torch.long))


def test_focal_without_focusing_is_cross_entropy_multiclass():
    logits = _logits_from_probs([0.25, 0.5, 0.25], [0.7, 0.2, 0.1], [0.6, 0.2, 0.2])
    target = torch.tensor([[[0, 1, IGNORE]]])

    focal = FocalLoss(ignore_index=IGNORE, gamma=0.0)(logits, target)

    expected = (math.log(4) + math.log(5)) / 2
    torch.testing.assert_close(focal, torch.tensor(expected))
    torch.testing.assert_close(focal, CrossEntropyLoss(ignore_index=IGNORE)(logits, target))


def test_focal_without_focusing_is_binary_cross_entropy():
    probs, labels = [0.9, 0.3, 0.6, 0.5], [1, 1, 0, IGNORE]
    logits = torch.tensor([_logit(p) for p in probs]).view(1, 1, 1, 4)
    target = torch.tensor(labels).view(1, 1, 4)

    focal = FocalLoss(mode="binary", ignore_index=IGNORE, gamma=0.0)(logits, target)

    expected = (-math.log(0.9) - math.log(0.3) - math.log(0.4)) / 3
    torch.testing.assert_close(focal, torch.tensor(expected))
    bce = BinaryCrossEntropyLoss(mode="binary", ignore_index=IGNORE)(logits, target)
    torch.testing.assert_close(focal, bce)


def test_focal_loss_matches_hand_computation_in_every_mode():
    # multiclass: p_t = 1/2 (class 1, alpha 2) and 1/4 (class 0, alpha 1), gamma 2
    logits = _logits_from_probs([0.25, 0.5, 0.25], [0.25, 0.5, 0.25])
    multiclass = FocalLoss(gamma=2.0, alpha=[1.0, 2.0, 3.0])(logits, torch.tensor([[[1, 0]]]))
    expected = (2 * 0.5**2 * math.log(2) + 1 * 0.75**2 * math.log(4)) / 2
    torch.testing.assert_close(multiclass, torch.tensor(expected))

    # binary: a positive at p = 0.8 (alpha 0.25), a negative at p = 0.4 (1 - alpha = 0.75)
    logits = torch.tensor([_logit(0.8), _logit(0.4)]).view(1, 1, 1, 2)
    binary = FocalLoss(mode="binary", gamma=2.0, alpha=0.25)(logits, torch.tensor([[[1, 0]]]))
    expected = (0.25 * 0.2**2 * -math.log(0.8) + 0.75 * 0.4**2 * -math.log(0.6)) / 2
    torch.testing.assert_close(binary, torch.tensor(expected))


def test_focal_refuses_one_alpha_for_every_class_in_multiclass_mode():
    with pytest.raises(ValueError, match=r"alpha=0.25 must be a list of one weight per class"):
        FocalLoss(alpha=0.25)


# --- Dice and Tversky ---------------------------------------------------------------------------


def test_sigmoid_dice_matches_hand_computation():
    # binary: foreground probabilities 0.8, 0.4, 0.1 for targets 1, 1, 0; the last is void
    logits = torch.tensor([_logit(p) for p in (0.8, 0.4, 0.1, 0.9)]).view(1, 1, 1, 4)
    target = torch.tensor([[[1, 1, 0, IGNORE]]])
    binary = DiceLoss(ignore_index=IGNORE, smooth=0.0, mode="binary")(logits, target)
    # I = 1.2, P = 1.3, T = 2
    torch.testing.assert_close(binary, torch.tensor(1 - 2.4 / 3.3))

    # multilabel: channel 0 as above; channel 1 has targets 0, 1, 1, 1 at 0.5 each, the first
    # void; both channels count, the second with I = 1.5, P = 1.5, T = 3
    logits = torch.cat([logits, torch.zeros_like(logits)], dim=1)
    target = torch.tensor([[[1, 1, 0, IGNORE]], [[IGNORE, 1, 1, 1]]]).unsqueeze(0)
    multilabel = DiceLoss(ignore_index=IGNORE, smooth=0.0, mode="multilabel")(logits, target)
    torch.testing.assert_close(multilabel, torch.tensor(1 - (2.4 / 3.3 + 3 / 4.5) / 2))


def test_tversky_matches_hand_computation():
    # as in the Dice test: class 0 has TP = 5/4, FP = 1/4, FN = 3/4; class 1 TP = 3/4,
    # FP = 3/4, FN = 1/4
    logits = _logits_from_probs([0.75, 0.25], [0.5, 0.5], [0.25, 0.75], [0.9, 0.1])
    target = torch.tensor([[[0, 0, 1, IGNORE]]])

    loss = TverskyLoss(ignore_index=IGNORE, alpha=0.3, beta=0.7, smooth=0.0)(logits, target)

    class_0 = 1.25 / (1.25 + 0.3 * 0.25 + 0.7 * 0.75)
    class_1 = 0.75 / (0.75 + 0.3 * 0.75 + 0.7 * 0.25)
    torch.testing.assert_close(loss, torch.tensor(1 - (class_0 + class_1) / 2))


@pytest.mark.parametrize("present_classes_only", [True, False])
@pytest.mark.parametrize("mode", MODES)
def test_tversky_with_equal_weights_of_one_half_is_dice(mode, present_classes_only):
    logits, target, _ = _mode_batch(mode, seed=3)
    options = {"ignore_index": IGNORE, "present_classes_only": present_classes_only, "mode": mode}

    tversky = TverskyLoss(alpha=0.5, beta=0.5, smooth=0.7, **options)(logits, target)
    dice = DiceLoss(smooth=0.7, **options)(logits, target)

    torch.testing.assert_close(tversky, dice)


# --- Lovasz ---------------------------------------------------------------------------------


def _jaccard_loss(wrong: set[int], positives: set[int]) -> float:
    """1 - IoU of a class when the pixels ``wrong`` are mispredicted (Berman's Delta_J)."""
    return len(wrong) / len(positives | wrong) if wrong else 0.0


def _lovasz_by_thresholds(errors: list[float], labels: list[int]) -> float:
    """The Lovasz extension of the Jaccard loss at ``errors`` (>= 0) as a Choquet integral,
    ``integral over t > 0 of Delta_J({i : errors_i >= t}) dt``: a sum over the levels of the
    distinct errors, with no sorting of pixels nor cumulative sums."""
    positives = {i for i, label in enumerate(labels) if label == 1}
    levels = [*sorted({e for e in errors if e > 0}, reverse=True), 0.0]
    return sum(
        (high - low) * _jaccard_loss({i for i, e in enumerate(errors) if e >= high}, positives)
        for high, low in zip(levels, levels[1:], strict=False)
    )


def test_lovasz_by_thresholds_is_the_jaccard_loss_at_binary_errors():
    # a check of the brute force itself: at 0/1 errors the extension equals the set function
    assert _lovasz_by_thresholds([1.0, 0.0, 1.0, 0.0], [1, 1, 0, 0]) == 2 / 3


def test_lovasz_softmax_matches_the_extension_by_thresholds():
    probs = [[0.7, 0.2, 0.1], [0.3, 0.3, 0.4], [0.1, 0.8, 0.1], [0.5, 0.25, 0.25], [0.2, 0.2, 0.6]]
    labels = [0, 2, 1, 0, IGNORE]
    logits = _logits_from_probs(*probs)
    target = torch.tensor([[labels]])

    loss = LovaszLoss(ignore_index=IGNORE)(logits, target)

    kept = [(p, y) for p, y in zip(probs, labels, strict=True) if y != IGNORE]
    per_class = [
        _lovasz_by_thresholds(
            [abs((y == c) - p[c]) for p, y in kept], [int(y == c) for _, y in kept]
        )
        for c in range(3)
    ]
    torch.testing.assert_close(loss, torch.tensor(sum(per_class) / 3))


def test_lovasz_softmax_averages_present_classes_and_images_when_per_image():
    # image 0 holds classes 0 and 1, image 1 only class 2; class 2 of image 0 is left out
    probs = [[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.3, 0.3, 0.4], [0.1, 0.1, 0.8]]
    labels = [[0, 1], [2, 2]]
    logits = torch.cat([_logits_from_probs(*probs[:2]), _logits_from_probs(*probs[2:])])
    target = torch.tensor(labels).view(2, 1, 2)

    loss = LovaszLoss(per_image=True)(logits, target)

    def image_loss(image_probs, image_labels, classes):
        return sum(
            _lovasz_by_thresholds(
                [abs((y == c) - p[c]) for p, y in zip(image_probs, image_labels, strict=True)],
                [int(y == c) for y in image_labels],
            )
            for c in classes
        ) / len(classes)

    expected = (
        image_loss(probs[:2], labels[0], [0, 1]) + image_loss(probs[2:], labels[1], [2])
    ) / 2
    torch.testing.assert_close(loss, torch.tensor(expected))


def test_lovasz_hinge_matches_the_extension_by_thresholds_per_channel():
    # multilabel, 2 channels x 5 pixels; channel 1 has a void entry of its own
    values = [[2.0, -0.5, 0.3, -1.5, 0.8], [-0.2, 1.2, -3.0, 0.6, 0.1]]
    labels = [[1, 1, 0, 0, 1], [0, 1, IGNORE, 0, 1]]
    logits = torch.tensor(values).view(1, 2, 1, 5)
    target = torch.tensor(labels).view(1, 2, 1, 5)

    loss = LovaszLoss(mode="multilabel", ignore_index=IGNORE)(logits, target)

    per_channel = []
    for x_c, y_c in zip(values, labels, strict=True):
        kept = [(x, y) for x, y in zip(x_c, y_c, strict=True) if y != IGNORE]
        hinge = [max(0.0, 1 - x * (2 * y - 1)) for x, y in kept]
        per_channel.append(_lovasz_by_thresholds(hinge, [y for _, y in kept]))
    torch.testing.assert_close(loss, torch.tensor(sum(per_channel) / 2))

    binary = LovaszLoss(mode="binary", ignore_index=IGNORE)(logits[:, 1:], target[:, 1])
    torch.testing.assert_close(binary, torch.tensor(per_channel[1]))
