"""The library-backed encoders: layout, dilation, input channels and pretrained weights."""

import socket
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.error import URLError

import pytest
import timm
import torch
import torchvision
from huggingface_hub import constants as hf_constants
from hydra.utils import instantiate
from torch import nn

from seglab.models import MobileNetV3Encoder, ResNetEncoder, Segmenter, TimmEncoder

SIZE = 64

# Channels and strides of each config at output stride 32, from the architectures' papers.
LAYOUTS = {
    "resnet18": ([64, 64, 128, 256, 512], [2, 4, 8, 16, 32]),
    "resnet34": ([64, 64, 128, 256, 512], [2, 4, 8, 16, 32]),
    "resnet50": ([64, 256, 512, 1024, 2048], [2, 4, 8, 16, 32]),
    "mobilenetv3_large": ([16, 24, 40, 112, 960], [2, 4, 8, 16, 32]),
    "timm": ([16, 24, 40, 112, 320], [2, 4, 8, 16, 32]),  # efficientnet_b0
}


@pytest.fixture
def encoder_of(compose) -> Callable[..., nn.Module]:
    """``encoder_of(config, **overrides)``: the encoder ``model/encoder=<config>`` composes, its
    defaults list included."""

    def build(config: str, **overrides: object) -> nn.Module:
        cfg = compose("model/segmenter", f"model/encoder={config}")
        return instantiate(cfg.model.encoder, **overrides).eval()

    return build


def _features(encoder: nn.Module, channels: int = 3) -> list[torch.Tensor]:
    with torch.no_grad():
        return encoder(torch.randn(1, channels, SIZE, SIZE))


def _check_layout(encoder: nn.Module, channels: list[int], strides: list[int]) -> None:
    assert encoder.out_channels == channels
    assert encoder.strides == strides
    shapes = [tuple(f.shape) for f in _features(encoder, encoder.in_channels)]
    assert shapes == [(1, c, SIZE // s, SIZE // s) for c, s in zip(channels, strides, strict=True)]


@pytest.fixture
def compose_model(compose) -> Callable[..., Segmenter]:
    """A Segmenter of 5 classes from ``model/segmenter`` with the given overrides."""
    return lambda *overrides: instantiate(
        compose("model/segmenter", *overrides, "+data.num_classes=5").model
    )


@pytest.mark.parametrize("config", sorted(LAYOUTS))
def test_channels_strides_and_feature_shapes(encoder_of, config: str) -> None:
    torch.manual_seed(0)
    _check_layout(encoder_of(config), *LAYOUTS[config])


# Residual blocks per stage in the ResNet paper's table 1.
RESNET_BLOCKS = {"resnet18": [2, 2, 2, 2], "resnet34": [3, 4, 6, 3], "resnet50": [3, 4, 6, 3]}


@pytest.mark.parametrize("config", sorted(RESNET_BLOCKS))
def test_resnet_configs_build_their_own_depth(encoder_of, config: str) -> None:
    encoder = encoder_of(config)
    assert [len(stage) for stage in encoder._stages()] == RESNET_BLOCKS[config]


@pytest.mark.parametrize("config", ["resnet18", "mobilenetv3_large", "timm"])
@pytest.mark.parametrize(
    ("output_stride", "strides"), [(16, [2, 4, 8, 16, 16]), (8, [2, 4, 8, 8, 8])]
)
def test_output_stride_dilates_the_last_stages(
    encoder_of, config: str, output_stride: int, strides: list[int]
) -> None:
    channels = LAYOUTS[config][0]
    _check_layout(encoder_of(config, output_stride=output_stride), channels, strides)


def test_dilation_keeps_the_pretrained_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    plain = ResNetEncoder(weights_path=path).eval()
    dilated = ResNetEncoder(weights_path=path, output_stride=8).eval()
    conv = dilated.layer4[0].conv1
    assert (conv.stride, conv.dilation, conv.padding) == ((1, 1), (4, 4), (4, 4))
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        # Dilation changes only the stages past the output stride.
        for a, b in zip(plain(x)[:3], dilated(x)[:3], strict=True):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("encoder", [ResNetEncoder, MobileNetV3Encoder, TimmEncoder])
def test_unsupported_output_stride_names_the_key(encoder: type[nn.Module]) -> None:
    with pytest.raises(ValueError, match="output_stride=4 is not supported"):
        encoder(output_stride=4)


@pytest.mark.parametrize("encoder", [ResNetEncoder, MobileNetV3Encoder, TimmEncoder])
def test_input_channels_below_one_name_the_key(encoder: type[nn.Module]) -> None:
    with pytest.raises(ValueError, match=f"{encoder.__name__}: in_channels=0 must be positive"):
        encoder(in_channels=0)


def test_unknown_weights_name_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="weights='IMAGENET1K_V9'.*IMAGENET1K_V1"):
        ResNetEncoder(weights="IMAGENET1K_V9")


def _torchvision_file(tmp_path: Path, arch: str) -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(1)
    state = torchvision.models.get_model(arch).state_dict()
    path = tmp_path / f"{arch}.pth"
    torch.save(state, path)
    return path, state


@pytest.mark.parametrize(
    ("config", "arch", "classifier"),
    [("resnet18", "resnet18", "fc."), ("mobilenetv3_large", "mobilenet_v3_large", "classifier.")],
)
def test_torchvision_weights_file_loads_through_hydra(
    tmp_path: Path, config: str, arch: str, classifier: str, compose_model
) -> None:
    path, state = _torchvision_file(tmp_path, arch)
    model = compose_model(f"model/encoder={config}", f"model.encoder.weights_path={path}")
    loaded = model.encoder.state_dict()
    expected = {k: v for k, v in state.items() if not k.startswith(classifier)}
    assert loaded.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0, msg=key)


def test_timm_weights_file_loads_through_hydra(tmp_path: Path, compose_model) -> None:
    torch.manual_seed(1)
    state = timm.create_model("efficientnet_b0").state_dict()
    path = tmp_path / "efficientnet_b0.pth"
    torch.save(state, path)
    model = compose_model("model/encoder=timm", f"model.encoder.weights_path={path}")
    loaded = model.encoder.model.state_dict()
    assert "conv_stem.weight" in loaded and "blocks.6.0.conv_pwl.weight" in loaded
    for key, value in loaded.items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0, msg=key)


@pytest.mark.parametrize("encoder", [ResNetEncoder, TimmEncoder])
def test_own_state_dict_round_trips(tmp_path: Path, encoder: type[nn.Module]) -> None:
    torch.manual_seed(2)
    saved = encoder(in_channels=2).state_dict()
    path = tmp_path / "encoder.pth"
    torch.save(saved, path)
    loaded = encoder(in_channels=2, weights_path=path).state_dict()
    for key, value in saved.items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0, msg=key)


def test_one_channel_input_sums_the_rgb_filters(tmp_path: Path) -> None:
    path, state = _torchvision_file(tmp_path, "resnet18")
    rgb = state["conv1.weight"]
    encoder = ResNetEncoder(in_channels=1, weights_path=path)
    torch.testing.assert_close(encoder.conv1.weight, rgb[:, 0:1] + rgb[:, 1:2] + rgb[:, 2:3])
    _check_layout(encoder, *LAYOUTS["resnet18"])


def test_more_channels_repeat_the_rgb_filters_rescaled(tmp_path: Path) -> None:
    path, state = _torchvision_file(tmp_path, "mobilenet_v3_large")
    rgb = state["features.0.0.weight"]
    weight = MobileNetV3Encoder(in_channels=5, weights_path=path).features[0][0].weight
    expected = torch.cat([rgb, rgb[:, :2]], dim=1) * 3 / 5
    torch.testing.assert_close(weight, expected)


def _rgb_123(state: dict[str, torch.Tensor], key: str, path: Path) -> Path:
    """``state`` with every filter of ``key`` weighting red 1, green 2 and blue 3, saved."""
    weight = state[key]
    state[key] = torch.tensor([1.0, 2.0, 3.0])[None, :, None, None].expand_as(weight).clone()
    torch.save(state, path)
    return path


@pytest.mark.parametrize(
    ("channels", "hand_computed"),
    # the RGB filters repeated to the channel count, then scaled by 3 / channels
    [(4, [0.75, 1.5, 2.25, 0.75]), (2, [1.5, 3.0]), (7, [3 / 7, 6 / 7, 9 / 7] * 2 + [3 / 7])],
)
def test_n_channel_first_layer_from_hand_made_rgb_filters(
    tmp_path: Path, channels: int, hand_computed: list[float]
) -> None:
    path, state = _torchvision_file(tmp_path, "resnet18")
    _rgb_123(state, "conv1.weight", path)
    encoder = ResNetEncoder(in_channels=channels, weights_path=path)
    weight = encoder.conv1.weight
    assert weight.shape == (64, channels, 7, 7)
    expected = torch.tensor(hand_computed)[None, :, None, None].expand_as(weight)
    torch.testing.assert_close(weight, expected)
    # the rest of the network is the pretrained one, untouched
    for key, value in encoder.state_dict().items():
        if key != "conv1.weight":
            torch.testing.assert_close(value, state[key], rtol=0, atol=0, msg=key)


def test_timm_first_layer_for_four_bands_from_hand_made_rgb_filters(tmp_path: Path) -> None:
    torch.manual_seed(1)
    state = timm.create_model("efficientnet_b0").state_dict()
    path = _rgb_123(state, "conv_stem.weight", tmp_path / "efficientnet_b0.pth")
    weight = TimmEncoder(in_channels=4, weights_path=path).model.conv_stem.weight
    expected = torch.tensor([0.75, 1.5, 2.25, 0.75])[None, :, None, None].expand_as(weight)
    torch.testing.assert_close(weight, expected)


def test_timm_adapts_the_input_channels(tmp_path: Path) -> None:
    torch.manual_seed(1)
    state = timm.create_model("efficientnet_b0").state_dict()
    path = tmp_path / "efficientnet_b0.pth"
    torch.save(state, path)
    encoder = TimmEncoder(in_channels=1, weights_path=path)
    rgb = state["conv_stem.weight"]
    torch.testing.assert_close(encoder.model.conv_stem.weight, rgb.sum(dim=1, keepdim=True))


def test_weights_of_another_architecture_name_the_file_and_keys(tmp_path: Path) -> None:
    path, _ = _torchvision_file(tmp_path, "resnet50")
    with pytest.raises(ValueError, match=r"resnet50\.pth.*unexpected keys: layer1\.0\.bn3"):
        ResNetEncoder(depth=18, weights_path=path)
    torch.save(timm.create_model("resnet18").state_dict(), path)
    with pytest.raises(ValueError, match=r"resnet50\.pth.*missing keys: blocks"):
        TimmEncoder(weights_path=path)


def test_missing_weights_file_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="weights_path=.*nowhere.pth"):
        ResNetEncoder(weights_path=tmp_path / "nowhere.pth")


def test_offline_torchvision_weights_say_how_to_provide_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise URLError("Name or service not known")

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", offline)
    with pytest.raises(RuntimeError) as error:
        ResNetEncoder(depth=34, weights="imagenet")
    message = str(error.value)
    assert "ResNetEncoder" in message and "weights='imagenet' of resnet34" in message
    assert "https://download.pytorch.org/models/resnet34-" in message  # to fetch by hand
    assert "model.encoder.weights_path=" in message and "model.encoder.weights=null" in message


def test_offline_timm_weights_fail_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise OSError("Name or service not known")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(urllib.request, "getproxies", dict)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    start = time.monotonic()
    with pytest.raises(RuntimeError) as error:
        TimmEncoder(weights="imagenet")
    assert time.monotonic() - start < 10
    message = str(error.value)
    assert "weights='imagenet' of efficientnet_b0" in message
    assert "timm/efficientnet_b0" in message  # the Hugging Face repository to fetch by hand
    assert "model.encoder.weights_path=" in message and "model.encoder.weights=null" in message


def test_missing_timm_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(ImportError, match=r"pip install 'seglab\[timm\]'"):
        TimmEncoder()


def test_unknown_timm_model_names_the_key() -> None:
    with pytest.raises(ValueError, match="name='convnext_tinyy' is not a timm model"):
        TimmEncoder(name="convnext_tinyy")


def test_timm_model_name_is_a_config_override(compose_model) -> None:
    model = compose_model("model/encoder=timm", "model.encoder.name=convnext_tiny")
    assert model.encoder.out_channels == [96, 192, 384, 768]
    assert model.encoder.strides == [4, 8, 16, 32]
    with torch.no_grad():
        assert model(torch.randn(1, 3, 40, 48)).shape == (1, 5, 40, 48)
