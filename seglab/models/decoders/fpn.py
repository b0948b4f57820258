"""Feature pyramid network decoder with the semantic-segmentation branch of Panoptic FPN."""

from collections.abc import Sequence

import torch
from torch import nn

from seglab.models.decoders.base import Decoder, first_used_level
from seglab.models.layers import check_option, check_positive, conv_norm_act, resize


class FPNDecoder(Decoder):
    """Top-down feature pyramid, then every level upsampled to the finest and fused.

    Coarse features know what is in the image, fine ones where: the top-down pathway
    (1x1 lateral convs to a common width, coarser level upsampled and added) hands semantics
    down to every scale, a 3x3 conv smooths each level, and the segmentation branch merges all
    levels at the finest one so that no scale's evidence is lost. Stages: the smoothed levels,
    coarse to fine, then the fused map. Upsampling is bilinear, which also absorbs the
    off-by-one sizes of odd inputs; levels sharing a stride (a dilated encoder) add directly.

    Args:
        encoder_channels: channels of the encoder features, fine to coarse.
        encoder_strides: their strides; ``None`` assumes 1, 2, 4, ...
        pyramid_channels: width of every pyramid level (the paper uses 256).
        segmentation_channels: channels of the fused output (the paper uses 128).
        min_stride: features finer than this stride are not used, so that the pyramid and the
            fusion run at this resolution at most; the Segmenter upsamples the logits.
        merge: ``"add"`` sums the upsampled levels; ``"cat"`` concatenates them, letting the
            fusion conv weigh each level, at ``len(levels)`` times its input channels.
        norm: ``"batch"`` or ``"none"`` after each 3x3 convolution.
        activation: ``"relu"``, ``"gelu"`` or ``"silu"`` after each 3x3 convolution.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        encoder_strides: Sequence[int] | None = None,
        pyramid_channels: int = 128,
        segmentation_channels: int = 64,
        min_stride: int = 4,
        merge: str = "add",
        norm: str = "batch",
        activation: str = "relu",
    ) -> None:
        super().__init__(encoder_channels, encoder_strides, norm, activation)
        check_positive(
            "FPNDecoder",
            pyramid_channels=pyramid_channels,
            segmentation_channels=segmentation_channels,
        )
        check_option("FPNDecoder", "merge", merge, ("add", "cat"))
        self.first = first_used_level("FPNDecoder", self.encoder_strides, min_stride)
        self.merge = merge
        used = self.encoder_channels[self.first :][::-1]  # coarse to fine, as the stages run
        self.laterals = nn.ModuleList(nn.Conv2d(c, pyramid_channels, 1) for c in used)
        self.smooths = nn.ModuleList(
            conv_norm_act(pyramid_channels, pyramid_channels, 3, norm, activation) for _ in used
        )
        merged = pyramid_channels * len(used) if merge == "cat" else pyramid_channels
        self.fuse = conv_norm_act(merged, segmentation_channels, 3, norm, activation)
        self.stage_channels = [pyramid_channels] * len(used) + [segmentation_channels]

    def forward_stages(
        self, features: list[torch.Tensor], indices: list[torch.Tensor] | None = None
    ) -> list[torch.Tensor]:
        self.check_features(features)
        outputs = []
        top_down: torch.Tensor | None = None
        for i, (lateral, smooth, feature) in enumerate(
            zip(self.laterals, self.smooths, features[self.first :][::-1], strict=True)
        ):
            x = lateral(feature)
            if top_down is not None:
                x = x + resize(top_down, x.shape[-2:])
            top_down = x
            outputs.append(self.attend(i, smooth(x)))
        levels = [resize(level, outputs[-1].shape[-2:]) for level in outputs]
        merged = torch.stack(levels).sum(dim=0) if self.merge == "add" else torch.cat(levels, 1)
        outputs.append(self.attend(len(levels), self.fuse(merged)))
        return outputs
