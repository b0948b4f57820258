"""Encoders: image in, feature maps out, fine to coarse.

Every encoder exposes ``out_channels`` and ``strides`` (one entry per returned feature), and
``in_channels`` where it has a fixed one, so that the Segmenter can check and pad inputs and
build decoders and attention without knowing which encoder it holds. The conv/norm/activation
blocks here are shared with the decoders.
"""

from collections.abc import Sequence

import torch
from torch import nn

NORMS = ("batch", "none")
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}


def check_option(owner: str, key: str, value: str, choices: Sequence[str]) -> None:
    """Fail at construction, naming the config key, rather than deep inside a forward pass."""
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{owner}: {key}={value!r} is not supported; choose one of {options}")


def norm_act(channels: int, norm: str, activation: str) -> list[nn.Module]:
    """The layers that follow every convolution, so that one option switches them everywhere."""
    norm_layers: list[nn.Module] = [nn.BatchNorm2d(channels)] if norm == "batch" else []
    return [*norm_layers, ACTIVATIONS[activation]()]


def conv_stack(
    in_channels: int, out_channels: int, convs: int, norm: str, activation: str
) -> nn.Sequential:
    """``convs`` 3x3 convolutions, each followed by norm and activation, keeping the size."""
    layers: list[nn.Module] = []
    for i in range(convs):
        conv_in = in_channels if i == 0 else out_channels
        # A bias right before BatchNorm is cancelled by its mean subtraction.
        layers.append(nn.Conv2d(conv_in, out_channels, 3, padding=1, bias=norm == "none"))
        layers.extend(norm_act(out_channels, norm, activation))
    return nn.Sequential(*layers)


class ConvEncoder(nn.Module):
    """The classic conv/ReLU/max-pool encoder of the project's seed network.

    Stage 0 runs at full resolution so that a skip-connected decoder can recover pixel-exact
    boundaries; each later stage halves the resolution with a 2x2 max-pool before its convs.

    Args:
        in_channels: channels of the input image.
        widths: output channels of each stage; the number of stages is ``len(widths)``.
        convs_per_stage: 3x3 convolutions per stage.
        norm: ``"batch"`` or ``"none"`` after each convolution.
        activation: ``"relu"``, ``"gelu"`` or ``"silu"`` after each convolution.
    """

    def __init__(
        self,
        in_channels: int = 3,
        widths: Sequence[int] = (16, 32, 64, 128),
        convs_per_stage: int = 2,
        norm: str = "batch",
        activation: str = "relu",
    ) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if not widths or min(widths) < 1:
            raise ValueError(
                f"ConvEncoder: widths={widths} must be a non-empty list of positive ints"
            )
        if in_channels < 1:
            raise ValueError(f"ConvEncoder: in_channels={in_channels} must be positive")
        if convs_per_stage < 1:
            raise ValueError(f"ConvEncoder: convs_per_stage={convs_per_stage} must be positive")
        check_option("ConvEncoder", "norm", norm, NORMS)
        check_option("ConvEncoder", "activation", activation, list(ACTIVATIONS))
        self.in_channels = in_channels
        self.out_channels = widths
        self.strides = [2**i for i in range(len(widths))]
        stages = []
        for i, width in enumerate(widths):
            stage_in = in_channels if i == 0 else widths[i - 1]
            convs = conv_stack(stage_in, width, convs_per_stage, norm, activation)
            stages.append(convs if i == 0 else nn.Sequential(nn.MaxPool2d(2), convs))
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features
