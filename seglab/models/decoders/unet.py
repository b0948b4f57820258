"""U-Net decoder: skip concatenation at every scale."""

from collections.abc import Sequence

import torch
from torch import nn

from seglab.models.decoders.base import Decoder, step_widths
from seglab.models.layers import check_option, conv_stack, resize


class UNetDecoder(Decoder):
    """At each scale: upsample, concatenate the encoder feature of that scale, two 3x3 convs.

    Each encoder feature but the coarsest is one stage. Where two consecutive features share
    a stride (a dilated encoder), the step concatenates without upsampling.

    Args:
        encoder_channels: channels of the encoder features, fine to coarse.
        encoder_strides: their strides; ``None`` assumes 1, 2, 4, ...
        widths: output channels of each stage, coarse to fine; ``None`` mirrors the
            encoder, capped at 256.
        norm: ``"batch"`` or ``"none"`` after each 3x3 convolution.
        activation: ``"relu"``, ``"gelu"`` or ``"silu"`` after each 3x3 convolution.
        upsample: ``"transposed"`` learns the upsampling (a transposed conv to the stage's
            width, kernel and stride equal to the factor); ``"bilinear"`` interpolates, with
            fewer parameters and no checkerboard artefacts.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        encoder_strides: Sequence[int] | None = None,
        widths: Sequence[int] | None = None,
        norm: str = "batch",
        activation: str = "relu",
        upsample: str = "transposed",
    ) -> None:
        super().__init__(encoder_channels, encoder_strides, norm, activation)
        check_option("UNetDecoder", "upsample", upsample, ("transposed", "bilinear"))
        skips = self.encoder_channels[-2::-1]
        widths = step_widths("UNetDecoder", skips, widths)
        strides = self.encoder_strides[::-1]
        self.upsamples = nn.ModuleList()
        self.convs = nn.ModuleList()
        step_in = self.encoder_channels[-1]
        for i, (skip_channels, width) in enumerate(zip(skips, widths, strict=True)):
            factor = strides[i] // strides[i + 1]
            if factor == 1:
                self.upsamples.append(nn.Identity())
            elif upsample == "transposed":
                self.upsamples.append(nn.ConvTranspose2d(step_in, width, factor, stride=factor))
                step_in = width
            else:
                self.upsamples.append(
                    nn.Upsample(scale_factor=factor, mode="bilinear", align_corners=False)
                )
            self.convs.append(conv_stack(step_in + skip_channels, width, 2, norm, activation))
            step_in = width
        self.stage_channels = widths or [self.encoder_channels[-1]]

    def forward_stages(
        self, features: list[torch.Tensor], indices: list[torch.Tensor] | None = None
    ) -> list[torch.Tensor]:
        self.check_features(features)
        skips = features[-2::-1]

        def upsample_and_merge(i: int, x: torch.Tensor) -> torch.Tensor:
            # odd input sizes can leave the upsampled map a pixel off its skip
            x = resize(self.upsamples[i](x), skips[i].shape[-2:])
            return self.convs[i](torch.cat([x, skips[i]], dim=1))

        return self.chain_stages(features[-1], len(self.convs), upsample_and_merge)
