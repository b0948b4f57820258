import copy
import io
import itertools
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from tiny import CONF_DIR
from torch import nn

from seglab.models import (
    ConvEncoder,
    PixelSelfAttention,
    Segmenter,
    TransposedConvDecoder,
    UNetDecoder,
)

NUM_CLASSES = 5
# Few distinct sizes: oneDNN compiles kernels per input shape, which dominates test time on CPU.
ODD = (1, 3, 97, 131)
EVEN = (2, 3, 64, 64)


def _options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF_DIR / "model" / group).glob("*.yaml"))


COMBINATIONS = list(
    itertools.product(_options("encoder"), _options("decoder"), _options("attention"))
)


def _sample() -> list[tuple[str, str, str, str]]:
    """A few combinations in which every option of every group, and both attention sites,
    appear: the expensive checks run on these, the cheap forward check on all combinations."""
    encoders, decoders, attentions = (_options(g) for g in ("encoder", "decoder", "attention"))
    count = max(len(encoders), len(decoders), len(attentions))
    sample = {("conv", "unet", "none", "bottleneck")}
    for i in range(count):
        site = ("bottleneck", "decoder")[i % 2]
        encoder, decoder = encoders[i % len(encoders)], decoders[(i + 1) % len(decoders)]
        attention = attentions[i % len(attentions)]
        if not _compatible(encoder, decoder):
            sample.add(("conv", decoder, attention, site))
            decoder = "unet"
        sample.add((encoder, decoder, attention, site))
    return sorted(sample)


def _compatible(encoder: str, decoder: str) -> bool:
    """Unpooling decoders need an encoder that max-pools: only the conv encoder does."""
    return decoder != "segnet" or encoder == "conv"


SAMPLE = _sample()
#: The encoder of the quick subset's models: it builds in a fraction of a second, the others in
#: a second or more each (a ResNet-50 initialises 25M weights).
QUICK_ENCODER = "conv"


def _quick() -> list[tuple[str, str, str, str]]:
    """Every decoder, attention and attention site on the quick encoder; self-attention at the
    bottleneck only: at a decoder stage of that encoder it attends over the full-size map."""
    attentions = _options("attention")
    quick = []
    for i, decoder in enumerate(_options("decoder")):
        attention = attentions[i % len(attentions)]
        site = ("bottleneck", "decoder")[(i // 2) % 2]
        quick.append((QUICK_ENCODER, decoder, attention, site))
    return [(e, d, a, "bottleneck" if a == "self_attention" else s) for e, d, a, s in quick]


QUICK = _quick()
#: The models every composable-model check runs on: the quick ones, then the sample's others.
MODELS = [pytest.param(c, id="-".join(c)) for c in QUICK] + [
    pytest.param(c, id="-".join(c), marks=pytest.mark.slow) for c in SAMPLE if c[0] != QUICK_ENCODER
]


def compose_model(
    compose: Callable[..., Any], encoder: str, decoder: str, attention: str, attention_at: str
) -> Segmenter:
    """The Segmenter that ``model/segmenter`` composes from those options.

    Group overrides take the full path, exactly as on the training command line; data is not
    composed here, so the class count that model.num_classes interpolates is added.
    """
    cfg = compose(
        "model/segmenter",
        f"model/encoder={encoder}",
        f"model/decoder={decoder}",
        f"model/attention={attention}",
        f"model.attention_at={attention_at}",
        f"+data.num_classes={NUM_CLASSES}",
    )
    return instantiate(cfg.model)


#: An encoder built from each composed encoder node, for the cross product: building one
#: (initialising a ResNet-50's weights) costs more than the rest of a combination together.
_ENCODERS: dict[str, nn.Module] = {}


# the whole cross product is slow; SAMPLE runs every option of every group in the quick subset
@pytest.mark.slow
@pytest.mark.parametrize("combination", COMBINATIONS, ids="-".join)
def test_every_combination_composes_and_runs(combination: tuple[str, str, str], compose) -> None:
    torch.manual_seed(0)
    encoder, decoder, attention = combination
    cfg = compose(
        "model/segmenter",
        f"model/encoder={encoder}",
        f"model/decoder={decoder}",
        f"model/attention={attention}",
        f"+data.num_classes={NUM_CLASSES}",
    ).model
    node = OmegaConf.to_yaml(cfg.encoder)
    if node not in _ENCODERS:
        _ENCODERS[node] = instantiate(cfg.encoder).eval()
    if not _compatible(encoder, decoder):
        with pytest.raises(InstantiationException, match="max-pooling indices"):
            instantiate(cfg, encoder=_ENCODERS[node])
        return
    model = instantiate(cfg, encoder=_ENCODERS[node]).eval()
    with torch.no_grad():
        assert model(torch.randn(*ODD)).shape == (1, NUM_CLASSES, 97, 131)


# module-scoped: the tests run combination by combination, each model composed once
@pytest.fixture(scope="module", params=MODELS)
def combination(request: pytest.FixtureRequest) -> tuple[str, str, str, str]:
    return request.param


@pytest.fixture(scope="module")
def composed(combination: tuple[str, str, str, str], compose) -> Segmenter:
    """The combination's Segmenter as composed and initialised (building a ResNet-50 takes
    longer than a test of it): each test gets a copy."""
    torch.manual_seed(0)
    return compose_model(compose, *combination)


@pytest.fixture
def model(composed: Segmenter) -> Segmenter:
    model = copy.deepcopy(composed)
    torch.manual_seed(0)
    # Nudge every weight so that zero-initialised parts (the attention scale) take part.
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return model


def test_every_group_has_options() -> None:
    assert all(COMBINATIONS[0]) and ("conv", "unet", "none") in COMBINATIONS
    for i, group in enumerate(("encoder", "decoder", "attention")):
        assert {combination[i] for combination in SAMPLE} == set(_options(group))
    assert {combination[3] for combination in SAMPLE} == {"bottleneck", "decoder"}
    for i, group in enumerate(("decoder", "attention"), start=1):
        assert {combination[i] for combination in QUICK} == set(_options(group))
    assert {combination[3] for combination in QUICK} == {"bottleneck", "decoder"}


class TestComposedModel:
    """The checks every composable model must pass, whatever its parts."""

    def test_forward_any_size(self, model: Segmenter) -> None:
        assert model(torch.randn(*ODD)).shape == (1, NUM_CLASSES, 97, 131)
        assert model(torch.randn(*EVEN)).shape == (2, NUM_CLASSES, 64, 64)

    def test_predict_gives_probabilities(self, model: Segmenter) -> None:
        probabilities = model.eval().predict(torch.randn(*ODD))
        assert probabilities.shape == (1, NUM_CLASSES, 97, 131)
        assert not probabilities.requires_grad
        assert (probabilities >= 0).all()
        torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(1, 97, 131))

    def test_backward_gives_finite_grads(self, model: Segmenter) -> None:
        model(torch.randn(*EVEN)).square().mean().backward()
        for name, param in model.named_parameters():
            assert param.grad is not None, name
            assert torch.isfinite(param.grad).all(), name

    def test_state_dict_round_trip(self, model: Segmenter, composed: Segmenter) -> None:
        model(torch.randn(*EVEN))  # a training step's forward moves BatchNorm statistics
        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        buffer.seek(0)
        # as built, before the nudge and the forward: every weight and statistic differs
        restored = copy.deepcopy(composed)
        restored.load_state_dict(torch.load(buffer, weights_only=True))
        x = torch.randn(*ODD)
        torch.testing.assert_close(restored.eval()(x), model.eval()(x), rtol=0, atol=0)

    @pytest.mark.slow  # torch.export traces the whole model: seconds per model on a CPU
    def test_export_matches_eager(self, model: Segmenter) -> None:
        # torch.export rather than torch.jit.trace, which is deprecated.
        model.eval()
        x = torch.randn(*ODD)
        exported = torch.export.export(model, (x,)).module()
        torch.testing.assert_close(exported(x), model(x))


def test_conv_encoder_halves_resolution_per_stage() -> None:
    encoder = ConvEncoder(in_channels=4, widths=[8, 16, 32], convs_per_stage=1)
    features = encoder(torch.randn(2, 4, 24, 40))
    assert encoder.in_channels == 4
    assert encoder.out_channels == [8, 16, 32]
    assert encoder.strides == [1, 2, 4]
    assert [f.shape for f in features] == [(2, 8, 24, 40), (2, 16, 12, 20), (2, 32, 6, 10)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"norm": "group"}, "norm='group'"),
        ({"activation": "tanh"}, "activation='tanh'"),
        ({"widths": []}, "widths=[]"),
        ({"convs_per_stage": 0}, "convs_per_stage=0"),
    ],
    ids=["norm", "activation", "widths", "convs_per_stage"],
)
def test_conv_encoder_rejects_bad_options(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        ConvEncoder(**kwargs)


def _pyramid(channels: list[int], size: int = 16) -> list[torch.Tensor]:
    return [torch.randn(1, c, size // 2**i, size // 2**i) for i, c in enumerate(channels)]


def _perturb_finer(features: list[torch.Tensor]) -> list[torch.Tensor]:
    return [f + 1.0 for f in features[:-1]] + features[-1:]


def test_transposed_decoder_ignores_finer_features() -> None:
    channels = [4, 8, 16]
    decoder = TransposedConvDecoder(channels).eval()
    features = _pyramid(channels)
    out = decoder(features)
    assert out.shape == (1, decoder.out_channels, 16, 16)
    torch.testing.assert_close(decoder(_perturb_finer(features)), out, rtol=0, atol=0)


@pytest.mark.parametrize("upsample", ["transposed", "bilinear"])
def test_unet_decoder_uses_every_skip(upsample: str) -> None:
    channels = [4, 8, 16]
    decoder = UNetDecoder(channels, widths=[6, 5], upsample=upsample).eval()
    features = _pyramid(channels)
    out = decoder(features)
    assert out.shape == (1, 5, 16, 16)
    for i in range(len(channels) - 1):
        perturbed = [f + 1.0 if j == i else f for j, f in enumerate(features)]
        assert not torch.allclose(decoder(perturbed), out), f"feature {i} is not used"


@pytest.mark.parametrize("decoder_class", [TransposedConvDecoder, UNetDecoder])
def test_decoders_match_odd_sized_features(decoder_class: type[nn.Module]) -> None:
    # What an unpadded 15x15 input gives a ceil-mode encoder: 15, 8, 4.
    features = [torch.randn(1, 4, 15, 15), torch.randn(1, 8, 8, 8), torch.randn(1, 16, 4, 4)]
    assert decoder_class([4, 8, 16])(features).shape[-2:] == (15, 15)


def test_decoder_rejects_widths_of_wrong_length() -> None:
    with pytest.raises(ValueError, match=r"widths=\[8\] needs one positive entry"):
        UNetDecoder([4, 8, 16], widths=[8])


def _reference_attention(block: PixelSelfAttention, x: torch.Tensor) -> torch.Tensor:
    """Non-local attention written out with explicit matrices, one head at a time."""
    n, c, h, w = x.shape
    context = F.avg_pool2d(x, block.reduction, ceil_mode=True)
    q = block.query(x).flatten(2)
    k = block.key(context).flatten(2)
    v = block.value(context).flatten(2)
    heads = []
    for qh, kh, vh in zip(
        q.chunk(block.heads, 1), k.chunk(block.heads, 1), v.chunk(block.heads, 1), strict=True
    ):
        weights = torch.softmax(qh.transpose(1, 2) @ kh / math.sqrt(qh.shape[1]), dim=-1)
        heads.append(vh @ weights.transpose(1, 2))
    attended = torch.cat(heads, dim=1).reshape(n, c, h, w)
    return x + block.scale * block.proj(attended)


def test_self_attention_starts_as_identity_then_attends() -> None:
    torch.manual_seed(0)
    block = PixelSelfAttention(8, reduction=2, key_channels=4, heads=2)
    x = torch.randn(2, 8, 7, 9)
    torch.testing.assert_close(block(x), x, rtol=0, atol=0)
    with torch.no_grad():
        block.scale.fill_(1.0)
    out = block(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, _reference_attention(block, x))


def test_self_attention_rejects_heads_that_do_not_divide() -> None:
    with pytest.raises(ValueError, match="heads=3"):
        PixelSelfAttention(8, heads=3)


def test_segmenter_rejects_unknown_attention_site() -> None:
    with pytest.raises(ValueError, match="attention_at='head'"):
        Segmenter(ConvEncoder(widths=[4, 8]), UNetDecoder, 3, attention_at="head")


@pytest.mark.parametrize("shape", [(1, 1, 16, 16), (3, 16, 16)])
def test_segmenter_rejects_wrong_input_shape(shape: tuple[int, ...]) -> None:
    model = Segmenter(ConvEncoder(widths=[4, 8]), UNetDecoder, 3)
    with pytest.raises(ValueError, match=r"expected input shaped \(N, 3, H, W\)"):
        model(torch.randn(*shape))


class _CoarseEncoder(nn.Module):
    """An encoder whose finest feature is at stride 2, like most pretrained backbones."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = ConvEncoder(widths=[4, 8, 16])
        self.in_channels = 3
        self.out_channels = self.inner.out_channels[1:]
        self.strides = self.inner.strides[1:]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.inner(x)[1:]


def test_segmenter_upsamples_logits_of_coarse_decoders() -> None:
    model = Segmenter(_CoarseEncoder(), UNetDecoder, 3)
    assert model(torch.randn(1, 3, 13, 22)).shape == (1, 3, 13, 22)


def test_attention_at_decoder_follows_every_stage() -> None:
    model = Segmenter(ConvEncoder(widths=[4, 8, 16]), UNetDecoder, 3, PixelSelfAttention, "decoder")
    assert isinstance(model.attention, nn.Identity)
    blocks = list(model.decoder.stage_attention)
    assert [block.value.in_channels for block in blocks] == model.decoder.stage_channels == [8, 4]
    with torch.no_grad():
        for block in blocks:
            block.scale.fill_(1.0)
    x = torch.randn(1, 3, 20, 20)
    out = model(x)
    with torch.no_grad():
        blocks[0].scale.zero_()
    assert not torch.allclose(model(x), out), "the first stage's attention is not used"


def test_aux_heads_give_logits_for_every_intermediate_stage() -> None:
    torch.manual_seed(0)
    model = Segmenter(ConvEncoder(widths=[4, 8, 16, 32]), UNetDecoder, 3, aux_weight=0.4)
    x = torch.randn(2, 3, 21, 30)
    logits, aux = model.forward_with_aux(x)
    torch.testing.assert_close(logits, model(x), rtol=0, atol=0)
    assert len(aux) == len(model.decoder.stage_channels) - 1 == 2
    assert all(a.shape == (2, 3, 21, 30) for a in aux)
    sum(a.sum() for a in aux).backward()
    assert all(p.grad is not None for p in model.aux_heads.parameters())
    assert Segmenter(ConvEncoder(widths=[4, 8]), UNetDecoder, 3).forward_with_aux(x)[1] == []


def test_aux_heads_need_several_decoder_stages() -> None:
    with pytest.raises(ValueError, match=r"aux_weight=0.4 needs a decoder with several stages"):
        Segmenter(ConvEncoder(widths=[4]), UNetDecoder, 3, aux_weight=0.4)


def _status(field: str) -> float:
    """A field of /proc/self/status (``VmRSS:``, ``VmHWM:``) in MiB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024


@pytest.mark.slow  # attends over a 256x256 map
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc")
def test_self_attention_memory_grows_with_the_map_not_its_square() -> None:
    # 65536 queries x 4096 keys: a materialised attention matrix alone would be 1 GiB.
    block = PixelSelfAttention(8, reduction=4).eval()
    x = torch.randn(1, 8, 256, 256)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak (VmHWM) to the current resident size
    before = _status("VmRSS:")
    with torch.inference_mode():
        block(x)
    grown = _status("VmHWM:") - before
    assert grown < 256, f"peak grew by {grown:.0f} MiB"
