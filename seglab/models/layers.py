"""Building blocks shared by encoders, decoders, attention and the models' users, so one option
means one thing."""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("batch", "none")
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}


def check_option(owner: str, key: str, value: str, choices: Sequence[str]) -> None:
    """Fail at construction, naming the config key, rather than deep inside a forward pass."""
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{owner}: {key}={value!r} is not supported; choose one of {options}")


def check_positive(owner: str, **values: int) -> None:
    """Fail at construction on a width or count below 1, naming its config key."""
    for key, value in values.items():
        if value < 1:
            raise ValueError(f"{owner}: {key}={value} must be positive")


def norm_act(channels: int, norm: str, activation: str) -> list[nn.Module]:
    """The layers that follow every convolution, so that one option switches them everywhere."""
    norm_layers: list[nn.Module] = [nn.BatchNorm2d(channels)] if norm == "batch" else []
    return [*norm_layers, ACTIVATIONS[activation]()]


def conv_norm_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    norm: str,
    activation: str,
    dilation: int = 1,
) -> nn.Sequential:
    """One size-keeping convolution with its norm and activation."""
    padding = dilation * (kernel_size - 1) // 2
    # A bias right before BatchNorm is cancelled by its mean subtraction.
    conv = nn.Conv2d(
        in_channels,
        out_channels,
        kernel_size,
        padding=padding,
        dilation=dilation,
        bias=norm == "none",
    )
    return nn.Sequential(conv, *norm_act(out_channels, norm, activation))


def conv_stack(
    in_channels: int, out_channels: int, convs: int, norm: str, activation: str
) -> nn.Sequential:
    """``convs`` 3x3 convolutions, each followed by norm and activation, keeping the size."""
    layers: list[nn.Module] = []
    for i in range(convs):
        conv_in = in_channels if i == 0 else out_channels
        layers.extend(conv_norm_act(conv_in, out_channels, 3, norm, activation))
    return nn.Sequential(*layers)


def resize(x: torch.Tensor, size: Sequence[int], antialias: bool = False) -> torch.Tensor:
    """Bilinearly resize ``(N, C, h, w)`` features, logits or images to ``size`` (H, W); a no-op
    when they have it already.

    Every resize of the project goes through here, so features, logits and images are sampled
    the same way: pixel centres aligned (``align_corners=False``, as convolutions see pixels),
    and ``antialias`` for shrinking images, which would otherwise alias.
    """
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=antialias)
