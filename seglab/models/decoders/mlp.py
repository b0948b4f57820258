"""SegFormer's all-MLP decoder: per-pixel linear layers only, no spatial convolution."""

from collections.abc import Sequence

import torch
from torch import nn

from seglab.models.decoders.base import Decoder, first_used_level
from seglab.models.layers import check_positive, conv_norm_act, resize


class MLPDecoder(Decoder):
    """Embed every feature to one width, upsample to the finest used, concatenate, fuse.

    SegFormer's decoder is this light because its transformer encoder already gives every
    feature a large receptive field; after a convolutional encoder it is a cheap baseline that
    shows how much a decoder's own spatial context adds. One stage.

    Args:
        encoder_channels: channels of the encoder features, fine to coarse.
        encoder_strides: their strides; ``None`` assumes 1, 2, 4, ...
        embed_channels: width each feature is linearly projected to, and of the output
            (SegFormer uses 256 for its smallest model, 768 for the others).
        min_stride: features finer than this stride are not used, so that the fusion runs at
            this resolution at most; the Segmenter upsamples the logits.
        dropout: probability of zeroing each fused channel in training, as SegFormer does
            before its classifier; 0 turns it off.
        norm: ``"batch"`` or ``"none"`` after the fusing 1x1 convolution.
        activation: ``"relu"``, ``"gelu"`` or ``"silu"`` after the fusing 1x1 convolution.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        encoder_strides: Sequence[int] | None = None,
        embed_channels: int = 128,
        min_stride: int = 4,
        dropout: float = 0.1,
        norm: str = "batch",
        activation: str = "relu",
    ) -> None:
        super().__init__(encoder_channels, encoder_strides, norm, activation)
        check_positive("MLPDecoder", embed_channels=embed_channels)
        if not 0 <= dropout < 1:
            raise ValueError(f"MLPDecoder: dropout={dropout} must be in [0, 1)")
        self.first = first_used_level("MLPDecoder", self.encoder_strides, min_stride)
        used = self.encoder_channels[self.first :]
        self.embeds = nn.ModuleList(nn.Conv2d(c, embed_channels, 1) for c in used)
        self.fuse = conv_norm_act(len(used) * embed_channels, embed_channels, 1, norm, activation)
        self.dropout = nn.Dropout2d(dropout)
        self.stage_channels = [embed_channels]

    def forward_stages(
        self, features: list[torch.Tensor], indices: list[torch.Tensor] | None = None
    ) -> list[torch.Tensor]:
        self.check_features(features)
        embedded = [
            embed(feature)
            for embed, feature in zip(self.embeds, features[self.first :], strict=True)
        ]
        merged = torch.cat([resize(e, embedded[0].shape[-2:]) for e in embedded], dim=1)
        return [self.attend(0, self.dropout(self.fuse(merged)))]
