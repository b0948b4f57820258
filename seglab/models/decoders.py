"""Decoders: encoder features (fine to coarse) in, one feature map at the finest stride out.

Decoders are built from the encoder's channel counts (``decoder_factory(encoder_channels=...)``)
and assume that consecutive features differ by a factor of 2 in resolution. When an odd input
size breaks that by a pixel, they resize to the target feature's size instead of failing.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from seglab.models.encoders import ACTIVATIONS, NORMS, check_option, conv_stack, norm_act


def _step_widths(
    owner: str, encoder_channels: list[int], widths: Sequence[int] | None
) -> list[int]:
    """One width per 2x upsampling step; by default mirror the encoder, like U-Net does."""
    steps = len(encoder_channels) - 1
    if widths is None:
        return encoder_channels[-2::-1]
    widths = [int(w) for w in widths]
    if len(widths) != steps or min(widths, default=1) < 1:
        raise ValueError(
            f"{owner}: widths={widths} needs one positive entry per upsampling step "
            f"({steps} for {len(encoder_channels)} encoder features)"
        )
    return widths


def _resize_to(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    if x.shape[-2:] == reference.shape[-2:]:
        return x
    return F.interpolate(x, size=reference.shape[-2:], mode="bilinear", align_corners=False)


def _check_features(owner: str, features: list[torch.Tensor], expected: int) -> None:
    if len(features) != expected:
        raise ValueError(f"{owner}: expected {expected} encoder features, got {len(features)}")


class TransposedConvDecoder(nn.Module):
    """The seed network's decoder, kept as the baseline: no skip connections.

    Only the coarsest feature is used, so everything the output knows about fine detail must
    survive the bottleneck; comparing against ``UNetDecoder`` measures what skips buy.

    Args:
        encoder_channels: channels of the encoder features, fine to coarse.
        widths: output channels of each stride-2 transposed convolution, coarse to fine;
            ``None`` mirrors the encoder.
        norm: ``"batch"`` or ``"none"`` after each transposed convolution.
        activation: ``"relu"``, ``"gelu"`` or ``"silu"`` after each transposed convolution.
        kernel_size: even kernel of the transposed convolutions; 2 tiles the output without
            overlap, 4 overlaps neighbouring kernels, which smooths checkerboard artefacts.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        widths: Sequence[int] | None = None,
        norm: str = "batch",
        activation: str = "relu",
        kernel_size: int = 2,
    ) -> None:
        super().__init__()
        encoder_channels = [int(c) for c in encoder_channels]
        widths = _step_widths("TransposedConvDecoder", encoder_channels, widths)
        check_option("TransposedConvDecoder", "norm", norm, NORMS)
        check_option("TransposedConvDecoder", "activation", activation, list(ACTIVATIONS))
        if kernel_size < 2 or kernel_size % 2:
            raise ValueError(
                f"TransposedConvDecoder: kernel_size={kernel_size} must be even and >= 2 "
                "so that each step exactly doubles the size"
            )
        self.num_features = len(encoder_channels)
        self.out_channels = widths[-1] if widths else encoder_channels[-1]
        steps = []
        for step_in, width in zip([encoder_channels[-1], *widths[:-1]], widths, strict=True):
            upsample = nn.ConvTranspose2d(
                step_in,
                width,
                kernel_size,
                stride=2,
                padding=(kernel_size - 2) // 2,
                bias=norm == "none",
            )
            steps.append(nn.Sequential(upsample, *norm_act(width, norm, activation)))
        self.steps = nn.Sequential(*steps)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        _check_features("TransposedConvDecoder", features, self.num_features)
        return _resize_to(self.steps(features[-1]), features[0])


class UNetDecoder(nn.Module):
    """U-Net decoder: at each scale, upsample, concatenate the encoder feature, two 3x3 convs.

    Args:
        encoder_channels: channels of the encoder features, fine to coarse.
        widths: output channels of each upsampling step, coarse to fine; ``None`` mirrors the
            encoder.
        norm: ``"batch"`` or ``"none"`` after each 3x3 convolution.
        activation: ``"relu"``, ``"gelu"`` or ``"silu"`` after each 3x3 convolution.
        upsample: ``"transposed"`` learns the 2x upsampling (a 2x2 stride-2 transposed conv to
            the step's width); ``"bilinear"`` interpolates, with fewer parameters and no
            checkerboard artefacts.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        widths: Sequence[int] | None = None,
        norm: str = "batch",
        activation: str = "relu",
        upsample: str = "transposed",
    ) -> None:
        super().__init__()
        encoder_channels = [int(c) for c in encoder_channels]
        widths = _step_widths("UNetDecoder", encoder_channels, widths)
        check_option("UNetDecoder", "norm", norm, NORMS)
        check_option("UNetDecoder", "activation", activation, list(ACTIVATIONS))
        check_option("UNetDecoder", "upsample", upsample, ("transposed", "bilinear"))
        self.num_features = len(encoder_channels)
        self.out_channels = widths[-1] if widths else encoder_channels[-1]
        self.upsamples = nn.ModuleList()
        self.convs = nn.ModuleList()
        step_in = encoder_channels[-1]
        for skip_channels, width in zip(encoder_channels[-2::-1], widths, strict=True):
            if upsample == "transposed":
                self.upsamples.append(nn.ConvTranspose2d(step_in, width, 2, stride=2))
                step_in = width
            else:
                self.upsamples.append(
                    nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
                )
            self.convs.append(conv_stack(step_in + skip_channels, width, 2, norm, activation))
            step_in = width

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        _check_features("UNetDecoder", features, self.num_features)
        x = features[-1]
        skips = features[-2::-1]
        for upsample, convs, skip in zip(self.upsamples, self.convs, skips, strict=True):
            x = convs(torch.cat([_resize_to(upsample(x), skip), skip], dim=1))
        return x
