"""The base class and helpers that put pretrained networks behind the encoder interface.

They load weights strictly with errors that say which file and keys are wrong, reuse RGB
filters for other channel counts, and trade the last strides for dilation, so that every
library-backed encoder treats ``weights``, ``weights_path``, ``in_channels`` and
``output_stride`` the same way.
"""

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from seglab.models.layers import check_option, check_positive

OUTPUT_STRIDES = (8, 16, 32)


class PretrainedEncoder(nn.Module):
    """Base of the library-backed encoders: the options that pick and adapt their weights.

    Each subclass takes the option that picks its architecture and hands these on, so that
    they are checked, and mean the same, for every library. They are kept as attributes for
    the subclass to build and load the network with.

    Args:
        in_channels: channels of the input image; other counts than 3 rebuild the first
            convolution, and pretrained RGB filters are summed for 1 channel, else repeated
            cyclically and scaled by ``3 / in_channels``.
        weights: ``None`` for random initialisation, or the library's pretrained weights:
            ``"imagenet"`` / ``"DEFAULT"`` for the recommended ones (some libraries name
            others; see the subclass), taken from the library's cache or downloaded.
        weights_path: a local file with the weights, for machines without internet: the
            library's own file for this network or an encoder's own ``state_dict()``. Every key
            but the classifier's must match; takes precedence over ``weights``.
        output_stride: 32, 16 or 8; below 32 the last stages dilate their convolutions
            instead of downsampling, for finer features at a higher cost (strides then read
            e.g. 2, 4, 8, 8, 8).
    """

    def __init__(
        self,
        in_channels: int = 3,
        weights: str | None = None,
        weights_path: str | Path | None = None,
        output_stride: int = 32,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        check_positive(owner, in_channels=in_channels)
        check_option(owner, "output_stride", output_stride, OUTPUT_STRIDES)
        self.in_channels = in_channels
        self.weights = weights
        self.weights_path = weights_path
        self.output_stride = output_stride


def weights_unavailable(
    owner: str, model: str, weights: str, error: Exception, where: str
) -> RuntimeError:
    """The error for pretrained weights that cannot be fetched, most often for lack of a
    network: it says how to get them onto this machine or how to do without."""
    return RuntimeError(
        f"{owner}: could not get the pretrained weights weights={weights!r} of {model} "
        f"({error}). "
        f"Without internet access, download them on a machine that has it ({where}) and pass "
        "model.encoder.weights_path=<file>, or set model.encoder.weights=null to start from "
        "random weights."
    )


def read_state_dict(owner: str, path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict saved with ``torch.save`` (what torch hub downloads)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{owner}: weights_path={str(path)!r} is not a file")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ValueError(
            f"{owner}: weights_path={str(path)!r} does not hold a state dict (a mapping from "
            "parameter names to tensors, as saved by torch.save(model.state_dict(), path))"
        )
    return dict(state)


def adapt_input_weight(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Reuse the filters of a first convolution for ``in_channels`` input channels.

    One channel gets the sum of the filters, so that a grey image, seen as equal R, G and B,
    gives the response the network was trained on. Other counts repeat the filters cyclically
    and rescale them by ``source channels / in_channels`` to keep activations at their scale.
    """
    source = weight.shape[1]
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeated = weight.repeat(1, math.ceil(in_channels / source), 1, 1)[:, :in_channels]
    return repeated * (source / in_channels)


def with_input_channels(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """A freshly initialised copy of ``conv`` that takes ``in_channels`` inputs."""
    if conv.in_channels == in_channels:
        return conv
    return nn.Conv2d(
        in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
    )


def _listed(keys: Sequence[str], shown: int = 5) -> str:
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more


def load_weights(
    encoder: nn.Module,
    state: Mapping[str, torch.Tensor],
    source: str,
    first_conv: str | None = None,
    classifier: Sequence[str] = (),
) -> None:
    """Load ``state`` into ``encoder`` strictly, once the classifier keys are dropped.

    A three-channel weight of ``first_conv`` (a module name) is adapted to the encoder's input
    channels with ``adapt_input_weight``. Any missing, unexpected or misshapen key is an error
    naming ``source``, so that a wrong file never leaves part of the network at random.
    """
    state = {k: v for k, v in state.items() if k.split(".")[0] not in classifier}
    own = encoder.state_dict()
    key = f"{first_conv}.weight"
    rgb = first_conv is not None and key in state and key in own and state[key].shape[1] == 3
    if rgb and own[key].shape[1] != 3:
        state[key] = adapt_input_weight(state[key], own[key].shape[1])
    missing = sorted(own.keys() - state.keys())
    unexpected = sorted(state.keys() - own.keys())
    misshapen = sorted(
        f"{k} {tuple(state[k].shape)} (expected {tuple(own[k].shape)})"
        for k in own.keys() & state.keys()
        if state[k].shape != own[k].shape
    )
    if missing or unexpected or misshapen:
        problems = [
            f"{name}: {_listed(keys)}"
            for name, keys in (
                ("missing keys", missing),
                ("unexpected keys", unexpected),
                ("shape mismatches", misshapen),
            )
            if keys
        ]
        raise ValueError(
            f"{type(encoder).__name__}: the weights in {source} do not fit this encoder; "
            f"{'; '.join(problems)}. Pass weights of the same architecture."
        )
    encoder.load_state_dict(state)


def dilate(stages: Sequence[nn.Module], strides: Sequence[int], output_stride: int) -> list[int]:
    """Replace the downsampling of the stages past ``output_stride`` by dilation.

    ``strides[i]`` is the stride of the output of ``stages[i]``. Every convolution of a stage
    whose stride would exceed ``output_stride`` gets stride 1 and dilation
    ``stride / output_stride`` (with the padding that keeps the size), so its receptive field
    and its pretrained weights stay valid at the higher resolution. Returns the new strides.
    """
    for stage, stride in zip(stages, strides, strict=True):
        if stride <= output_stride:
            continue
        rate = stride // output_stride
        for conv in stage.modules():
            if isinstance(conv, nn.Conv2d):
                conv.stride = (1, 1)
                if max(conv.kernel_size) > 1:
                    conv.dilation = (rate, rate)
                    conv.padding = tuple(rate * (k - 1) // 2 for k in conv.kernel_size)
    return [min(stride, output_stride) for stride in strides]
