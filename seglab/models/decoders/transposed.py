"""The seed network's decoder: transposed convolutions from the bottleneck, no skips."""

from collections.abc import Sequence

import torch
from torch import nn

from seglab.models.decoders.base import Decoder, step_widths
from seglab.models.layers import norm_act, resize


class TransposedConvDecoder(Decoder):
    """The seed network's decoder, kept as the baseline: no skip connections.

    Only the coarsest feature is used, so everything the output knows about fine detail must
    survive the bottleneck; comparing against ``UNetDecoder`` measures what skips buy. One
    stride-2 transposed convolution per factor of 2 between the coarsest and finest encoder
    strides, each a stage.

    Args:
        encoder_channels: channels of the encoder features, fine to coarse.
        encoder_strides: their strides; ``None`` assumes 1, 2, 4, ...
        widths: output channels of each transposed convolution, coarse to fine; ``None`` uses
            the encoder's channels at the same stride (capped at 256), mirroring it.
        norm: ``"batch"`` or ``"none"`` after each transposed convolution.
        activation: ``"relu"``, ``"gelu"`` or ``"silu"`` after each transposed convolution.
        kernel_size: even kernel of the transposed convolutions; 2 tiles the output without
            overlap, 4 overlaps neighbouring kernels, which smooths checkerboard artefacts.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        encoder_strides: Sequence[int] | None = None,
        widths: Sequence[int] | None = None,
        norm: str = "batch",
        activation: str = "relu",
        kernel_size: int = 2,
    ) -> None:
        super().__init__(encoder_channels, encoder_strides, norm, activation)
        if kernel_size < 2 or kernel_size % 2:
            raise ValueError(
                f"TransposedConvDecoder: kernel_size={kernel_size} must be even and >= 2 "
                "so that each step exactly doubles the size"
            )
        # the encoder channels found at each stride the decoder passes through, coarse to fine
        by_stride = dict(zip(self.encoder_strides, self.encoder_channels, strict=True))
        stride, defaults = self.encoder_strides[-1], []
        while stride > self.encoder_strides[0]:
            stride //= 2
            defaults.append(by_stride.get(stride, defaults[-1] if defaults else 64))
        widths = step_widths("TransposedConvDecoder", defaults, widths)
        steps = []
        for step_in, width in zip([self.encoder_channels[-1], *widths][:-1], widths, strict=True):
            upsample = nn.ConvTranspose2d(
                step_in,
                width,
                kernel_size,
                stride=2,
                padding=(kernel_size - 2) // 2,
                bias=norm == "none",
            )
            steps.append(nn.Sequential(upsample, *norm_act(width, norm, activation)))
        self.steps = nn.ModuleList(steps)
        self.stage_channels = widths or [self.encoder_channels[-1]]

    def forward_stages(
        self, features: list[torch.Tensor], indices: list[torch.Tensor] | None = None
    ) -> list[torch.Tensor]:
        self.check_features(features)
        outputs = self.chain_stages(features[-1], len(self.steps), lambda i, x: self.steps[i](x))
        # an odd input size leaves the doubled map a pixel off the finest feature's size
        outputs[-1] = resize(outputs[-1], features[0].shape[-2:])
        return outputs
