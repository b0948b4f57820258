"""Sliding-window inference and test-time augmentation against plain forward passes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seglab.inference.inferer import TTA, Inferer, blend_weights, window_starts


def _model(kernel: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Conv2d(3, 4, kernel, padding=kernel // 2).eval()


class _Ones(nn.Module):
    """Logits of 1 everywhere: the blended output is the weights' sum over their sum."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ones(x.shape[0], 2, *x.shape[-2:])


def test_window_starts_cover_the_size_and_end_flush() -> None:
    assert window_starts(10, 4, 0.5) == [0, 2, 4, 6]
    assert window_starts(11, 4, 0.5) == [0, 2, 4, 6, 7]
    assert window_starts(4, 4, 0.25) == [0]


def test_gaussian_weights_peak_at_the_centre_and_stay_positive() -> None:
    weights = blend_weights(8, 6, "gaussian")
    assert weights.shape == (8, 6) and weights.min() > 0
    assert weights[3:5, 2:4].min() == weights.max()
    assert torch.equal(blend_weights(3, 3, "uniform"), torch.ones(3, 3))


@pytest.mark.parametrize("blend", ["gaussian", "uniform"])
def test_one_tile_image_equals_the_plain_forward_pass(blend: str) -> None:
    model, images = _model(), torch.randn(2, 3, 16, 24)
    sliding = Inferer(model, tile=[16, 24], blend=blend).logits(images)
    # one image at a time against a batch of two: equal up to the float rounding of batching
    torch.testing.assert_close(sliding, model(images).detach(), rtol=1e-6, atol=1e-6)


def test_image_smaller_than_a_tile_runs_whole() -> None:
    model, images = _model(), torch.randn(1, 3, 10, 12)
    torch.testing.assert_close(
        Inferer(model, tile=64).logits(images), model(images).detach(), rtol=0, atol=0
    )


@pytest.mark.parametrize("blend", ["gaussian", "uniform"])
def test_sliding_matches_the_whole_image_for_a_pointwise_model(blend: str) -> None:
    model, images = _model(kernel=1), torch.randn(1, 3, 37, 53)
    inferer = Inferer(model, tile=16, overlap=0.25, blend=blend, tile_batch_size=3)
    torch.testing.assert_close(inferer.logits(images), model(images).detach())


def test_blended_weights_sum_to_one_everywhere() -> None:
    logits = Inferer(_Ones(), tile=[8, 6], overlap=0.5).logits(torch.zeros(1, 3, 21, 17))
    assert logits.shape == (1, 2, 21, 17)
    torch.testing.assert_close(logits, torch.ones_like(logits))


def test_sliding_with_a_receptive_field_stays_close_away_from_tile_borders() -> None:
    model, images = _model(kernel=3), torch.randn(1, 3, 40, 40)
    sliding = Inferer(model, tile=20, overlap=0.5).logits(images)
    assert sliding.shape == (1, 4, 40, 40)
    whole = model(images).detach()
    assert (sliding - whole).abs().mean() < 0.1 * whole.abs().mean()


def test_hflip_tta_averages_the_mirrored_probabilities() -> None:
    model, images = _model(), torch.randn(1, 3, 12, 20)
    with torch.no_grad():
        plain = model(images).softmax(dim=1)
        mirrored = model(images.flip(-1)).flip(-1).softmax(dim=1)
    inferer = Inferer(model, tta=TTA(hflip=True))
    torch.testing.assert_close(inferer.probabilities(images), (plain + mirrored) / 2)
    torch.testing.assert_close(inferer.logits(images).exp(), (plain + mirrored) / 2)


def test_multiscale_tta_returns_probabilities_at_the_image_size() -> None:
    model, images = _model(), torch.randn(2, 3, 30, 41)
    inferer = Inferer(model, tile=16, tta=TTA(hflip=True, scales=[0.75, 1.0, 1.25]))
    probabilities = inferer.probabilities(images)
    assert probabilities.shape == (2, 4, 30, 41)
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(2, 30, 41))


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"tile": 0}, "tile=0"),
        ({"overlap": 1.0}, "overlap=1.0"),
        ({"blend": "box"}, "blend='box'"),
        ({"tile_batch_size": 0}, "tile_batch_size=0"),
        ({"image_scale": 0}, "image_scale=0"),
    ],
)
def test_bad_options_name_the_key(options: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key.replace("[", r"\[")):
        Inferer(_model(), **options)


def test_tta_refuses_no_scales_or_a_nonpositive_one() -> None:
    for scales in ([], [1.0, 0.0]):
        with pytest.raises(ValueError, match=r"tta.scales="):
            TTA(scales=scales)
