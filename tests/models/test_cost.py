"""A model's cost: parameters counted by hand, FLOPs of a forward pass worked out by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seglab.models.cost import GFLOPS, PARAMS, cost_metrics, forward_flops, parameter_count


def _tiny() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, kernel_size=3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.ConvTranspose2d(4, 2, kernel_size=2, stride=2, bias=False),
    )


def test_parameters_and_flops_of_a_tiny_conv_model_match_a_hand_count() -> None:
    model = _tiny()
    # conv: 4*3*3*3 weights + 4 biases; BatchNorm: 4 scales + 4 shifts; transposed: 4*2*2*2
    assert parameter_count(model) == 112 + 8 + 32
    # a multiply-add is 2 FLOPs. The 3x3 conv: each of the 8*6 output pixels of each of the 4
    # channels takes 3*3*3 multiply-adds. The 2x2 stride-2 transposed conv: each of the 4*3
    # input pixels of each of its 4 channels spreads into 2*2 pixels of 2 channels. BatchNorm,
    # ReLU, pooling and the bias count nothing.
    conv = 2 * (8 * 6) * 4 * (3 * 3 * 3)
    transposed = 2 * (4 * 3) * 4 * (2 * 2 * 2)
    assert forward_flops(model, (1, 3, 8, 6)) == conv + transposed
    assert forward_flops(model, (2, 3, 8, 6)) == 2 * (conv + transposed), "per image of a batch"
    assert cost_metrics(model, (1, 3, 8, 6)) == {
        PARAMS: 152.0,
        GFLOPS: pytest.approx((conv + transposed) / 1e9),
    }


def test_counting_flops_leaves_the_model_and_the_random_stream_as_they_were() -> None:
    model = _tiny().train()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    rng = torch.get_rng_state()
    forward_flops(model, (1, 3, 8, 6))
    assert model.training
    assert torch.equal(torch.get_rng_state(), rng)
    # an eval-mode pass: BatchNorm's running statistics are untouched
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name
