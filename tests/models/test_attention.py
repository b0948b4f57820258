"""Squeeze-and-excitation style attention against computations written out by hand."""

import re

import pytest
import torch
import torch.nn.functional as F

from seglab.models import CBAM, ConvEncoder, SCSEAttention, Segmenter, UNetDecoder


def _mlp(block: torch.nn.Sequential, v: torch.Tensor) -> torch.Tensor:
    """The 1x1-conv bottleneck applied to (N, C) vectors as two matrix products."""
    first, second = block[0], block[2]
    hidden = torch.relu(v @ first.weight.flatten(1).T + first.bias)
    return hidden @ second.weight.flatten(1).T + second.bias


def _reference_scse(block: SCSEAttention, x: torch.Tensor) -> torch.Tensor:
    channel_gate = torch.sigmoid(_mlp(block.channel_gate, x.mean(dim=(2, 3))))
    channel = x * channel_gate[:, :, None, None]
    conv = block.spatial_gate
    spatial_gate = torch.sigmoid(torch.einsum("nchw,c->nhw", x, conv.weight.flatten()) + conv.bias)
    spatial = x * spatial_gate[:, None]
    return channel + spatial if block.combine == "add" else torch.maximum(channel, spatial)


def _reference_cbam(block: CBAM, x: torch.Tensor) -> torch.Tensor:
    average, maximum = x.mean(dim=(2, 3)), x.flatten(2).max(dim=2).values
    channel_gate = torch.sigmoid(
        _mlp(block.channel_mlp, average) + _mlp(block.channel_mlp, maximum)
    )
    x = x * channel_gate[:, :, None, None]
    maps = torch.stack([x.mean(dim=1), x.max(dim=1).values], dim=1)  # (N, 2, H, W)
    weight = block.spatial_conv.weight[0]  # (2, k, k)
    k = weight.shape[-1]
    padded = F.pad(maps, (k // 2,) * 4)
    h, w = x.shape[-2:]
    # The convolution as a sum over kernel offsets, each a shifted view of the padded maps.
    logits = sum(
        torch.einsum("nchw,c->nhw", padded[:, :, i : i + h, j : j + w], weight[:, i, j])
        for i in range(k)
        for j in range(k)
    )
    return x * torch.sigmoid(logits + block.spatial_conv.bias)[:, None]


@pytest.mark.parametrize("combine", ["add", "max"])
def test_scse_matches_reference(combine: str) -> None:
    torch.manual_seed(0)
    block = SCSEAttention(8, reduction=2, combine=combine)
    x = torch.randn(2, 8, 5, 6)
    torch.testing.assert_close(block(x), _reference_scse(block, x))


@pytest.mark.parametrize("kernel_size", [7, 3])
def test_cbam_matches_reference(kernel_size: int) -> None:
    torch.manual_seed(0)
    block = CBAM(8, reduction=2, kernel_size=kernel_size)
    x = torch.randn(2, 8, 5, 6)
    torch.testing.assert_close(block(x), _reference_cbam(block, x))


@pytest.mark.parametrize("channels", [1, 4, 33])
@pytest.mark.parametrize("attention_class", [SCSEAttention, CBAM])
def test_shapes_kept_and_bottleneck_at_least_one(
    attention_class: type[torch.nn.Module], channels: int
) -> None:
    block = attention_class(channels=channels)  # reduction 16: 4 // 16 would be 0
    mlp = block.channel_gate if isinstance(block, SCSEAttention) else block.channel_mlp
    assert mlp[0].out_channels == max(1, channels // 16)
    x = torch.randn(2, channels, 7, 3, requires_grad=True)
    out = block(x)
    assert out.shape == x.shape
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in block.parameters())


def test_max_combination_takes_the_larger_gated_value() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 4, 3, 3)
    added = SCSEAttention(4, reduction=1, combine="add")
    maxed = SCSEAttention(4, reduction=1, combine="max")
    maxed.load_state_dict(added.state_dict())
    # Both gates lie in (0, 1): the sum of the two gated maps is larger in magnitude.
    assert (added(x).abs() > maxed(x).abs()).all()


@pytest.mark.parametrize(
    ("attention_class", "kwargs", "message"),
    [
        (SCSEAttention, {"reduction": 0}, "reduction=0"),
        (SCSEAttention, {"combine": "mul"}, "combine='mul'"),
        (SCSEAttention, {"channels": 0}, "channels=0"),
        (CBAM, {"reduction": -2}, "reduction=-2"),
        (CBAM, {"kernel_size": 4}, "kernel_size=4"),
    ],
)
def test_bad_options_name_the_key(
    attention_class: type[torch.nn.Module], kwargs: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        attention_class(**{"channels": 8, **kwargs})


@pytest.mark.parametrize("attention_class", [SCSEAttention, CBAM])
def test_attention_after_every_decoder_stage(attention_class: type[torch.nn.Module]) -> None:
    model = Segmenter(
        ConvEncoder(widths=[4, 8, 16], convs_per_stage=1),
        UNetDecoder,
        3,
        attention=attention_class,
        attention_at="decoder",
    )
    assert [type(a) for a in model.decoder.stage_attention] == [attention_class] * 2
    assert model(torch.randn(1, 3, 13, 10)).shape == (1, 3, 13, 10)
