"""DeepLabV3+ decoder: atrous spatial pyramid pooling, refined with one low-level feature."""

from collections.abc import Sequence

import torch
from torch import nn

from seglab.models.decoders.base import Decoder
from seglab.models.layers import ACTIVATIONS, check_positive, conv_norm_act, conv_stack, resize


class DeepLabV3PlusDecoder(Decoder):
    """ASPP on the coarsest feature for context, a low-level feature for boundaries.

    The ASPP branches (a 1x1 conv, one dilated 3x3 conv per rate, and global average pooling)
    see the coarsest feature at several fields of view at once; their 1x1 projection is the
    first stage. It is then upsampled to a finer encoder feature, projected to a few channels
    so that it does not outweigh the context, concatenated and refined by two 3x3 convs (the
    second stage). The image-pooling branch has no norm: its map is 1x1, so BatchNorm would
    fail to train with a batch of one. (Such a batch still trains, but that branch learns
    nothing from it: constant over the map, it is subtracted by the projection's BatchNorm.)

    Args:
        encoder_channels: channels of the encoder features, fine to coarse.
        encoder_strides: their strides; ``None`` assumes 1, 2, 4, ...
        aspp_channels: width of every ASPP branch and of their projection (the paper uses 256).
        rates: dilation of each 3x3 ASPP branch; ``None`` picks (12, 24, 36) when the
            coarsest stride is 8 and (6, 12, 18) otherwise, the paper's rates for output
            strides 8 and 16.
        low_level_stride: stride of the low-level feature; without one at exactly this stride,
            the coarsest feature finer than it is used, or the finest feature if all are
            coarser. Among features sharing that stride (a dilated encoder), the first.
        low_level_channels: channels the low-level feature is projected to (the paper's 48).
        decoder_channels: channels of the two 3x3 refinement convs, the output (the paper
            uses 256).
        norm: ``"batch"`` or ``"none"`` after each convolution but the image pooling's.
        activation: ``"relu"``, ``"gelu"`` or ``"silu"`` after each convolution.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        encoder_strides: Sequence[int] | None = None,
        aspp_channels: int = 128,
        rates: Sequence[int] | None = None,
        low_level_stride: int = 4,
        low_level_channels: int = 48,
        decoder_channels: int = 128,
        norm: str = "batch",
        activation: str = "relu",
    ) -> None:
        super().__init__(encoder_channels, encoder_strides, norm, activation)
        check_positive(
            "DeepLabV3PlusDecoder",
            aspp_channels=aspp_channels,
            low_level_stride=low_level_stride,
            low_level_channels=low_level_channels,
            decoder_channels=decoder_channels,
        )
        if rates is None:
            rates = (12, 24, 36) if self.encoder_strides[-1] == 8 else (6, 12, 18)
        rates = [int(r) for r in rates]
        if not rates or min(rates) < 1:
            raise ValueError(
                f"DeepLabV3PlusDecoder: rates={rates} must be a non-empty list of positive "
                "dilations, or null for the defaults of the encoder's stride"
            )
        self.rates = rates
        self.low_level = self._low_level_index(low_level_stride)
        coarsest = self.encoder_channels[-1]
        self.aspp = nn.ModuleList(
            [
                conv_norm_act(coarsest, aspp_channels, 1, norm, activation),
                *(
                    conv_norm_act(coarsest, aspp_channels, 3, norm, activation, dilation=rate)
                    for rate in rates
                ),
            ]
        )
        self.image_pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(coarsest, aspp_channels, 1),
            ACTIVATIONS[activation](),
        )
        branches = len(self.aspp) + 1
        self.project = conv_norm_act(branches * aspp_channels, aspp_channels, 1, norm, activation)
        self.low_level_project = conv_norm_act(
            self.encoder_channels[self.low_level], low_level_channels, 1, norm, activation
        )
        self.refine = conv_stack(
            aspp_channels + low_level_channels, decoder_channels, 2, norm, activation
        )
        self.stage_channels = [aspp_channels, decoder_channels]

    def _low_level_index(self, stride: int) -> int:
        finer = [s for s in self.encoder_strides if s <= stride]
        chosen = max(finer) if finer else self.encoder_strides[0]
        return self.encoder_strides.index(chosen)

    def forward_stages(
        self, features: list[torch.Tensor], indices: list[torch.Tensor] | None = None
    ) -> list[torch.Tensor]:
        self.check_features(features)
        x = features[-1]
        pooled = self.image_pool(x).expand(-1, -1, x.shape[-2], x.shape[-1])
        context = torch.cat([*(branch(x) for branch in self.aspp), pooled], dim=1)
        context = self.attend(0, self.project(context))
        low_level = self.low_level_project(features[self.low_level])
        merged = torch.cat([resize(context, low_level.shape[-2:]), low_level], dim=1)
        return [context, self.attend(1, self.refine(merged))]
