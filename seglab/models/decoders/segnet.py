"""SegNet decoder: max-unpooling with the encoder's pooling indices, then convolutions."""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from seglab.models.decoders.base import Decoder
from seglab.models.layers import check_positive, conv_norm_act, conv_stack


class SegNetDecoder(Decoder):
    """Upsample by putting each value back where the encoder's max-pool found it.

    Unpooling with the encoder's argmax indices restores boundary positions without skip
    features or learned upsampling: only the indices are kept, not the finer feature maps,
    which the decoder ignores. The unpooled map is sparse, so convolutions after each
    unpooling densify it; each such step is a stage. Indices are per channel, so the map
    unpooled into level ``i`` must have that feature's channels: the coarsest feature is first
    convolved to the channels of the one before it, and each stage's convs end at the channels
    of the next finer feature (the finest stage keeps the finest feature's), mirroring the
    encoder as SegNet does.

    Args:
        encoder_channels: channels of the encoder features, fine to coarse.
        encoder_strides: their strides, which must double from each feature to the next (a
            2x2 max-pool between them); ``None`` assumes 1, 2, 4, ...
        convs_per_stage: 3x3 convolutions after each unpooling.
        norm: ``"batch"`` or ``"none"`` after each convolution.
        activation: ``"relu"``, ``"gelu"`` or ``"silu"`` after each convolution.
    """

    requires_indices = True

    def __init__(
        self,
        encoder_channels: Sequence[int],
        encoder_strides: Sequence[int] | None = None,
        convs_per_stage: int = 2,
        norm: str = "batch",
        activation: str = "relu",
    ) -> None:
        super().__init__(encoder_channels, encoder_strides, norm, activation)
        check_positive("SegNetDecoder", convs_per_stage=convs_per_stage)
        strides = self.encoder_strides
        if any(b != 2 * a for a, b in zip(strides, strides[1:], strict=False)):
            raise ValueError(
                f"SegNetDecoder: encoder_strides={strides} must double from each feature to "
                "the next, one 2x2 max-pool apart; use an encoder that max-pools "
                "(model/encoder=conv) or another decoder"
            )
        channels = self.encoder_channels
        self.bottleneck: nn.Module = nn.Identity()
        if len(channels) > 1:
            self.bottleneck = conv_norm_act(channels[-1], channels[-2], 3, norm, activation)
        # Stage k unpools into level len - 2 - k, then convolves to the next finer channels.
        targets = channels[-2::-1]
        outs = [*targets[1:], channels[0]] if targets else []
        self.stages = nn.ModuleList(
            conv_stack(target, out, convs_per_stage, norm, activation)
            for target, out in zip(targets, outs, strict=True)
        )
        self.stage_channels = outs or [channels[0]]

    def forward_stages(
        self, features: list[torch.Tensor], indices: list[torch.Tensor] | None = None
    ) -> list[torch.Tensor]:
        self.check_features(features)
        if indices is None or len(indices) != len(features) - 1:
            got = "none" if indices is None else len(indices)
            raise ValueError(
                f"SegNetDecoder: needs the encoder's max-pooling indices, one per pooling "
                f"({len(features) - 1}), got {got}; pass those of "
                "ConvEncoder.forward_with_indices"
            )
        indices, targets = indices[::-1], features[-2::-1]

        def unpool_and_convolve(i: int, x: torch.Tensor) -> torch.Tensor:
            # output_size: a floor-mode pool of an odd size lost a row the indices point into
            x = F.max_unpool2d(x, indices[i], 2, output_size=targets[i].shape[-2:])
            return self.stages[i](x)

        x = self.bottleneck(features[-1])
        return self.chain_stages(x, len(self.stages), unpool_and_convolve)
