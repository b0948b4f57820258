"""The model-zoo decoders on hand-built feature pyramids: shapes, features read, options."""

import math
import re

import pytest
import torch
import torch.nn.functional as F
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from torch import nn

from seglab.models import (
    ConvEncoder,
    Decoder,
    DeepLabV3PlusDecoder,
    FCNDecoder,
    FPNDecoder,
    MLPDecoder,
    PSPDecoder,
    Segmenter,
    SegNetDecoder,
    TransposedConvDecoder,
    UNetDecoder,
)
from seglab.models.decoders.pspnet import average_pool_matrix

# Encoder layouts the decoders must handle: (channels, strides), fine to coarse.
LAYOUTS = {
    "conv": ([4, 6, 8, 10], [1, 2, 4, 8]),
    "resnet": ([4, 6, 8, 10, 12], [2, 4, 8, 16, 32]),
    "dilated": ([4, 6, 8, 10, 12], [2, 4, 8, 8, 8]),
}
POOLED_LAYOUTS = ["conv", "resnet"]  # the ones SegNet can unpool: each stride doubles
SIZES = [64, 37]  # 37: every stride leaves a remainder
DENSE_DECODERS = [FPNDecoder, MLPDecoder, DeepLabV3PlusDecoder, PSPDecoder, FCNDecoder]
STEPPED_DECODERS = [TransposedConvDecoder, UNetDecoder, SegNetDecoder]


def _side(size: int, stride: int) -> int:
    """Feature side of a ceil-mode encoder (what an unpadded odd input gives)."""
    return math.ceil(size / stride)


def _features(layout: str, size: int) -> list[torch.Tensor]:
    channels, strides = LAYOUTS[layout]
    return [
        torch.randn(2, c, _side(size, s), _side(size, s))
        for c, s in zip(channels, strides, strict=True)
    ]


def _pooled_features(layout: str, size: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Features of a max-pooling encoder and the indices of each pooling (floor mode)."""
    channels, _ = LAYOUTS[layout]
    features = [torch.randn(2, channels[0], size, size)]
    indices = []
    for c in channels[1:]:
        pooled, index = F.max_pool2d(features[-1], 2, return_indices=True)
        indices.append(index)
        features.append(torch.randn(2, c, *pooled.shape[-2:]))
    return features, indices


def _build(decoder_class: type[Decoder], layout: str, **kwargs) -> Decoder:
    torch.manual_seed(0)
    channels, strides = LAYOUTS[layout]
    return decoder_class(channels, strides, **kwargs).eval()


def _used(decoder: Decoder) -> set[int]:
    """The encoder features each decoder is meant to read, by construction."""
    n = len(decoder.encoder_channels)
    if isinstance(decoder, FPNDecoder | MLPDecoder):
        return set(range(decoder.first, n))
    if isinstance(decoder, DeepLabV3PlusDecoder):
        return {decoder.low_level, n - 1}
    if isinstance(decoder, FCNDecoder):
        return set(range(n - 1 - decoder.skips, n))
    return {n - 1}


def _expected_side(decoder: Decoder, size: int) -> int:
    if isinstance(decoder, FPNDecoder | MLPDecoder):
        return _side(size, decoder.encoder_strides[decoder.first])
    if isinstance(decoder, DeepLabV3PlusDecoder):
        return _side(size, decoder.encoder_strides[decoder.low_level])
    finest_used = min(_used(decoder))
    return _side(size, decoder.encoder_strides[finest_used])


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("decoder_class", DENSE_DECODERS)
def test_dense_decoder_stages_and_output_size(
    decoder_class: type[Decoder], layout: str, size: int
) -> None:
    decoder = _build(decoder_class, layout)
    stages = decoder.forward_stages(_features(layout, size))
    assert [s.shape[1] for s in stages] == decoder.stage_channels
    side = _expected_side(decoder, size)
    assert stages[-1].shape == (2, decoder.out_channels, side, side)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("layout", POOLED_LAYOUTS)
def test_segnet_stages_and_output_size(layout: str, size: int) -> None:
    decoder = _build(SegNetDecoder, layout)
    features, indices = _pooled_features(layout, size)
    stages = decoder.forward_stages(features, indices)
    assert len(stages) == len(indices)
    assert [s.shape[1] for s in stages] == decoder.stage_channels
    assert [s.shape[-2:] for s in stages] == [f.shape[-2:] for f in features[-2::-1]]
    assert stages[-1].shape == (2, LAYOUTS[layout][0][0], size, size)


@pytest.mark.parametrize(
    ("layout", "min_stride", "first"),
    [("conv", 4, 2), ("conv", 1, 0), ("resnet", 4, 1), ("dilated", 8, 2), ("dilated", 3, 1)],
)
@pytest.mark.parametrize("decoder_class", [FPNDecoder, MLPDecoder])
def test_min_stride_picks_the_finest_feature_at_or_above_it(
    decoder_class: type[Decoder], layout: str, min_stride: int, first: int
) -> None:
    decoder = _build(decoder_class, layout, min_stride=min_stride)
    assert decoder.first == first
    per_level = decoder.laterals if isinstance(decoder, FPNDecoder) else decoder.embeds
    assert len(per_level) == len(LAYOUTS[layout][0]) - first


@pytest.mark.parametrize(
    ("decoder_class", "kwargs"),
    [
        (FPNDecoder, {}),
        (FPNDecoder, {"min_stride": 1, "merge": "cat"}),
        (MLPDecoder, {}),
        (MLPDecoder, {"min_stride": 8}),
        (DeepLabV3PlusDecoder, {}),
        (DeepLabV3PlusDecoder, {"low_level_stride": 8}),
        (PSPDecoder, {}),
        (PSPDecoder, {"bins": [4]}),
        (FCNDecoder, {}),
        (FCNDecoder, {"skips": 0}),
        (FCNDecoder, {"skips": 3}),
    ],
    ids=[
        "fpn",
        "fpn-all-cat",
        "mlp",
        "mlp-stride8",
        "deeplab",
        "deeplab-low8",
        "psp",
        "psp-bin4",
        "fcn-8s",
        "fcn-32s",
        "fcn-3-skips",
    ],
)
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_dense_decoder_reads_exactly_its_features(
    decoder_class: type[Decoder], kwargs: dict, layout: str
) -> None:
    decoder = _build(decoder_class, layout, **kwargs)
    features = _features(layout, 37)
    out = decoder(features)
    used = _used(decoder)
    assert used, "the decoder reads no feature"
    for i in range(len(features)):
        perturbed = [f + torch.randn_like(f) if j == i else f for j, f in enumerate(features)]
        changed = decoder(perturbed)
        if i in used:
            assert not torch.allclose(changed, out), f"feature {i} is not used"
        else:
            torch.testing.assert_close(changed, out, rtol=0, atol=0, msg=f"feature {i} used")


@pytest.mark.parametrize("layout", POOLED_LAYOUTS)
def test_segnet_reads_coarsest_feature_and_indices_only(layout: str) -> None:
    decoder = _build(SegNetDecoder, layout)
    features, indices = _pooled_features(layout, 37)
    out = decoder(features, indices)
    finer = [f + torch.randn_like(f) for f in features[:-1]] + features[-1:]
    torch.testing.assert_close(decoder(finer, indices), out, rtol=0, atol=0)
    coarsest = [*features[:-1], features[-1] + torch.randn_like(features[-1])]
    assert not torch.allclose(decoder(coarsest, indices), out)
    for i in range(len(indices)):
        # Other valid argmax positions: pool the same feature shifted by one pixel.
        shifted = F.pad(features[i], (1, 0, 1, 0))[..., :-1, :-1]
        _, other = F.max_pool2d(shifted, 2, return_indices=True)
        moved = [other if j == i else index for j, index in enumerate(indices)]
        assert not torch.allclose(decoder(features, moved), out), f"indices {i} are not used"


@pytest.mark.parametrize("side", [4, 5])
def test_segnet_unpools_to_the_argmax_positions(side: int) -> None:
    # One channel, two levels; the bottleneck conv is made the identity (centre tap 1, no
    # bias, ReLU of positive values), so the map being unpooled is the coarse feature itself.
    decoder = SegNetDecoder([1, 1], [1, 2], convs_per_stage=1, norm="none")
    with torch.no_grad():
        conv = decoder.bottleneck[0]
        conv.weight.zero_()
        conv.weight[0, 0, 1, 1] = 1.0
        conv.bias.zero_()
    fine = torch.zeros(1, 1, side, side)
    # The maximum of each 2x2 window (floor mode drops row and column 4 of the 5x5 map).
    positions = [(0, 1), (1, 3), (3, 0), (3, 3)]
    for value, (row, col) in enumerate(positions, start=5):
        fine[0, 0, row, col] = value
    index = torch.tensor([[[[row * side + col for row, col in positions]]]]).reshape(1, 1, 2, 2)
    _, pooled_index = F.max_pool2d(fine, 2, return_indices=True)
    assert torch.equal(pooled_index, index)
    coarse = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    unpooled = []
    decoder.stages[0].register_forward_pre_hook(lambda _, args: unpooled.append(args[0]))
    decoder([fine, coarse], [index])
    expected = torch.zeros(1, 1, side, side)
    for value, (row, col) in enumerate(positions, start=1):
        expected[0, 0, row, col] = value
    torch.testing.assert_close(unpooled[0], expected, rtol=0, atol=0)


def test_segnet_without_indices_says_what_to_pass() -> None:
    decoder = _build(SegNetDecoder, "conv")
    features, indices = _pooled_features("conv", 16)
    with pytest.raises(ValueError, match=r"indices.*\(3\), got none.*forward_with_indices"):
        decoder(features)
    with pytest.raises(ValueError, match=r"\(3\), got 2"):
        decoder(features, indices[:2])


@pytest.mark.parametrize(
    ("coarsest_stride", "rates"), [(8, [12, 24, 36]), (16, [6, 12, 18]), (32, [6, 12, 18])]
)
def test_deeplab_default_rates_follow_the_coarsest_stride(
    coarsest_stride: int, rates: list[int]
) -> None:
    decoder = DeepLabV3PlusDecoder([4, 8], [coarsest_stride // 2, coarsest_stride])
    assert [branch[0].dilation[0] for branch in decoder.aspp[1:]] == rates
    custom = DeepLabV3PlusDecoder([4, 8], [4, 8], rates=[2, 3])
    assert [branch[0].dilation[0] for branch in custom.aspp[1:]] == [2, 3]


@pytest.mark.parametrize(
    ("strides", "low_level_stride", "index"),
    [
        ([1, 2, 4, 8], 4, 2),
        ([2, 4, 8, 16, 32], 4, 1),
        ([2, 4, 8, 8, 8], 8, 2),  # the first of the features sharing that stride
        ([1, 2, 8], 4, 1),  # none at 4: the coarsest finer one
        ([8, 16, 32], 4, 0),  # all coarser: the finest
    ],
)
def test_deeplab_low_level_feature(strides: list[int], low_level_stride: int, index: int) -> None:
    channels = [4] * len(strides)
    decoder = DeepLabV3PlusDecoder(channels, strides, low_level_stride=low_level_stride)
    assert decoder.low_level == index


def test_deeplab_trains_with_batch_size_one() -> None:
    torch.manual_seed(0)
    model = Segmenter(
        ConvEncoder(widths=[4, 8, 16, 32], convs_per_stage=1), DeepLabV3PlusDecoder, 3
    )
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = {name: p.detach().clone() for name, p in model.decoder.named_parameters()}
    logits = model(torch.randn(1, 3, 24, 24))
    loss = F.cross_entropy(logits, torch.randint(0, 3, (1, 24, 24)))
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.decoder.image_pool.modules())
    for name, param in model.decoder.named_parameters():
        # A batch of one makes the pooling branch constant over the map, which the
        # projection's BatchNorm subtracts: that branch only learns from larger batches.
        if not name.startswith("image_pool."):
            assert not torch.equal(param, before[name]), f"{name} did not train"


@pytest.mark.parametrize(
    ("decoder_class", "kwargs", "message"),
    [
        (FPNDecoder, {"merge": "mean"}, "merge='mean'"),
        (FPNDecoder, {"min_stride": 16}, "min_stride=16"),
        (FPNDecoder, {"pyramid_channels": 0}, "pyramid_channels=0"),
        (FPNDecoder, {"norm": "group"}, "norm='group'"),
        (MLPDecoder, {"dropout": 1.0}, "dropout=1.0"),
        (MLPDecoder, {"min_stride": 0}, "min_stride=0"),
        (MLPDecoder, {"embed_channels": 0}, "embed_channels=0"),
        (MLPDecoder, {"activation": "tanh"}, "activation='tanh'"),
        (DeepLabV3PlusDecoder, {"rates": []}, "rates=[]"),
        (DeepLabV3PlusDecoder, {"rates": [6, 0]}, "rates=[6, 0]"),
        (DeepLabV3PlusDecoder, {"low_level_stride": 0}, "low_level_stride=0"),
        (DeepLabV3PlusDecoder, {"aspp_channels": -1}, "aspp_channels=-1"),
        (SegNetDecoder, {"convs_per_stage": 0}, "convs_per_stage=0"),
        (SegNetDecoder, {"norm": "layer"}, "norm='layer'"),
        (PSPDecoder, {"bins": []}, "bins=[]"),
        (PSPDecoder, {"bins": [1, 0]}, "bins=[1, 0]"),
        (PSPDecoder, {"pool_channels": 0}, "pool_channels=0"),
        (FCNDecoder, {"skips": 4}, "skips=4 must be between 0 and 3"),
        (FCNDecoder, {"skips": -1}, "skips=-1"),
        (FCNDecoder, {"channels": 0}, "channels=0"),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else None,
)
def test_bad_options_name_the_key(decoder_class: type[Decoder], kwargs: dict, message: str) -> None:
    channels, strides = LAYOUTS["conv"]
    with pytest.raises(ValueError, match=re.escape(message)):
        decoder_class(channels, strides, **kwargs)


@pytest.mark.parametrize("decoder_class", DENSE_DECODERS + STEPPED_DECODERS)
@pytest.mark.parametrize("key", ["norm", "activation"])
def test_every_decoder_checks_norm_and_activation(decoder_class: type[Decoder], key: str) -> None:
    channels, strides = LAYOUTS["conv"]
    message = f"{decoder_class.__name__}: {key}='tanh' is not supported"
    with pytest.raises(ValueError, match=re.escape(message)):
        decoder_class(channels, strides, **{key: "tanh"})


class _Double(nn.Module):
    """Stage attention whose effect a test can see."""

    def __init__(self, channels: int) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * x


@pytest.mark.parametrize("decoder_class", STEPPED_DECODERS)
def test_one_feature_is_the_only_stage_and_is_attended(decoder_class: type[Decoder]) -> None:
    decoder = decoder_class([4], [1])
    decoder.add_stage_attention(_Double)
    feature = torch.randn(2, 4, 5, 7)
    stages = decoder.forward_stages([feature], [])
    assert decoder.stage_channels == [4]
    assert len(stages) == 1 and torch.equal(stages[0], 2 * feature)


def test_segnet_rejects_strides_that_do_not_double() -> None:
    channels, strides = LAYOUTS["dilated"]
    with pytest.raises(ValueError, match=re.escape("encoder_strides=[2, 4, 8, 8, 8] must double")):
        SegNetDecoder(channels, strides)


@pytest.mark.parametrize("attention_at", ["bottleneck", "decoder"])
def test_segnet_through_hydra_with_the_conv_encoder(attention_at: str, compose) -> None:
    cfg = compose(
        "model/segmenter",
        "model/encoder=conv",
        "model/decoder=segnet",
        "model/attention=scse",
        f"model.attention_at={attention_at}",
        "+data.num_classes=3",
    )
    model = instantiate(cfg.model).eval()
    assert isinstance(model.decoder, SegNetDecoder) and model.uses_indices
    with torch.no_grad():
        assert model(torch.randn(1, 3, 21, 30)).shape == (1, 3, 21, 30)


class PlainEncoder(nn.Module):
    """An encoder with strides that SegNet could follow, but no pooling indices to give."""

    out_channels = (4, 8)
    strides = (1, 2)

    def __init__(self) -> None:
        super().__init__()
        self.fine = nn.Conv2d(3, 4, 3, padding=1)
        self.coarse = nn.Conv2d(4, 8, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        fine = self.fine(x)
        return [fine, self.coarse(fine)]


def test_segnet_with_an_encoder_without_indices_fails_at_build(compose) -> None:
    cfg = compose(
        "model/segmenter", "model/encoder=conv", "model/decoder=segnet", "+data.num_classes=3"
    )
    message = (
        "Segmenter: SegNetDecoder unpools with the encoder's max-pooling indices, which "
        "PlainEncoder does not provide; use an encoder that max-pools (model/encoder=conv)"
    )
    # Hydra wraps what the target raised, keeping its message.
    with pytest.raises(InstantiationException, match=re.escape(message)) as raised:
        instantiate(cfg.model, encoder=PlainEncoder())
    assert isinstance(raised.value.__cause__, ValueError)


@pytest.mark.parametrize(
    "decoder_class", [FPNDecoder, DeepLabV3PlusDecoder, SegNetDecoder, PSPDecoder, FCNDecoder]
)
def test_multi_stage_decoders_feed_auxiliary_heads(decoder_class: type[Decoder]) -> None:
    encoder = ConvEncoder(widths=[4, 8, 16, 32], convs_per_stage=1)
    model = Segmenter(encoder, decoder_class, 3, aux_weight=0.4).eval()
    logits, aux = model.forward_with_aux(torch.randn(1, 3, 19, 26))
    assert logits.shape == (1, 3, 19, 26)
    assert [a.shape for a in aux] == [(1, 3, 19, 26)] * (len(model.decoder.stage_channels) - 1)


def test_single_stage_mlp_decoder_rejects_auxiliary_heads() -> None:
    encoder = ConvEncoder(widths=[4, 8, 16, 32], convs_per_stage=1)
    with pytest.raises(ValueError, match=r"aux_weight=0.4 needs a decoder with several stages"):
        Segmenter(encoder, MLPDecoder, 3, aux_weight=0.4)


@pytest.mark.parametrize(
    ("height", "width", "bins"),
    [(12, 18, 6), (13, 7, 3), (5, 7, 2), (2, 3, 6), (1, 1, 2), (4, 5, 1)],
    ids=["divisible", "odd", "remainders", "smaller-than-bins", "one-pixel", "global"],
)
def test_psp_pooling_is_adaptive_average_pooling(height: int, width: int, bins: int) -> None:
    x = torch.randn(2, 3, height, width)
    pooled = average_pool_matrix(height, bins, x) @ x @ average_pool_matrix(width, bins, x).T
    torch.testing.assert_close(pooled, F.adaptive_avg_pool2d(x, bins))


def test_psp_pools_each_bin_into_that_many_cells() -> None:
    decoder = _build(PSPDecoder, "resnet", bins=[1, 2, 3, 6])
    pooled_sides = []
    for reduction in decoder.reductions:
        reduction.register_forward_pre_hook(lambda _, args: pooled_sides.append(args[0].shape))
    stages = decoder.forward_stages(_features("resnet", 100))  # a 4x4 coarsest map
    assert [side[-2:] for side in pooled_sides] == [(1, 1), (2, 2), (3, 3), (6, 6)]
    assert [s.shape for s in stages] == [(2, 4 * 64, 4, 4), (2, 128, 4, 4)]


def test_psp_bins_add_one_reduction_each() -> None:
    coarsest, pool, out = 12, 5, 7

    def parameters(bins: list[int]) -> int:
        decoder = _build(PSPDecoder, "resnet", bins=bins, pool_channels=pool, decoder_channels=out)
        return sum(p.numel() for p in decoder.parameters())

    bin_one = coarsest * pool + pool  # 1x1 conv with a bias, no norm
    binned = coarsest * pool + 2 * pool  # 1x1 conv without bias, BatchNorm's weight and bias

    def fuse(branches: int) -> int:  # 3x3 conv without bias over the feature and the pyramid
        return (coarsest + branches * pool) * out * 9 + 2 * out

    assert parameters([1]) == bin_one + fuse(1)
    assert parameters([1, 2, 3, 6]) == bin_one + 3 * binned + fuse(4)
    assert parameters([2, 4]) == 2 * binned + fuse(2)


def test_psp_trains_with_batch_size_one_on_a_map_smaller_than_its_bins() -> None:
    torch.manual_seed(0)
    model = Segmenter(ConvEncoder(widths=[4, 8, 16, 32], convs_per_stage=1), PSPDecoder, 3)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = {name: p.detach().clone() for name, p in model.decoder.named_parameters()}
    logits = model(torch.randn(1, 3, 19, 21))  # a 3x3 coarsest map, pooled into up to 6x6
    loss = F.cross_entropy(logits, torch.randint(0, 3, (1, 19, 21)))
    loss.backward()
    optimizer.step()
    assert logits.shape == (1, 3, 19, 21) and torch.isfinite(loss)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.decoder.reductions[0].modules())
    for name, param in model.decoder.named_parameters():
        assert not torch.equal(param, before[name]), f"{name} did not train"


def test_fcn_adds_each_skip_at_its_stride() -> None:
    decoder = _build(FCNDecoder, "resnet")  # FCN-8s: skips at strides 16 and 8
    features = _features("resnet", 64)
    stages = decoder.forward_stages(features)
    assert [s.shape for s in stages] == [(2, 128, 2, 2), (2, 128, 4, 4), (2, 128, 8, 8)]
    for skip, joins_at in ((3, 1), (2, 2)):
        zeroed = [torch.zeros_like(f) if i == skip else f for i, f in enumerate(features)]
        changed = decoder.forward_stages(zeroed)
        for stage, (before, after) in enumerate(zip(stages, changed, strict=True)):
            if stage < joins_at:
                torch.testing.assert_close(after, before, rtol=0, atol=0)
            else:
                assert not torch.allclose(after, before), f"skip {skip} missing at stage {stage}"
