"""FCN-8s decoder: the coarsest feature scored, upsampled and summed with scored skips."""

from collections.abc import Sequence

import torch
from torch import nn

from seglab.models.decoders.base import Decoder
from seglab.models.layers import check_positive, conv_norm_act, resize


class FCNDecoder(Decoder):
    """Score the coarsest feature, then per skip: upsample, add the skip feature's score.

    FCN-8s refines the coarse prediction step by step: the scores of the stride-32 feature are
    upsampled and added to a 1x1 scoring of the stride-16 feature, the sum upsampled and added
    to a scoring of the stride-8 one. Here the skips are the ``skips`` encoder features just
    finer than the coarsest, whatever their strides (16 and 8 on a stride-32 encoder; features
    sharing a stride, in a dilated encoder, add without upsampling). A 3x3 conv with norm and
    activation on the coarsest feature stands for FCN's convolutionalised fully connected
    layers, which belong to its VGG backbone. Scores are ``channels`` wide rather than one per
    class: the class count belongs to the Segmenter's 1x1 head, and as that head and the
    scorings are linear, head(sum of scores) is FCN's sum of class scores, factorised through
    ``channels``. Upsampling is bilinear rather than FCN's learned (bilinear-initialised)
    transposed convs. Stages: the coarsest score, then each sum.

    Args:
        encoder_channels: channels of the encoder features, fine to coarse.
        encoder_strides: their strides; ``None`` assumes 1, 2, 4, ...
        skips: finer features added to the coarsest one's score: 2 is FCN-8s, 1 FCN-16s and
            0 FCN-32s on a stride-32 encoder; at most the encoder's feature count minus one.
        channels: width of the 3x3 conv and of every score.
        norm: ``"batch"`` or ``"none"`` after the 3x3 convolution.
        activation: ``"relu"``, ``"gelu"`` or ``"silu"`` after the 3x3 convolution.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        encoder_strides: Sequence[int] | None = None,
        skips: int = 2,
        channels: int = 128,
        norm: str = "batch",
        activation: str = "relu",
    ) -> None:
        super().__init__(encoder_channels, encoder_strides, norm, activation)
        check_positive("FCNDecoder", channels=channels)
        available = len(self.encoder_channels) - 1
        if not 0 <= skips <= available:
            raise ValueError(
                f"FCNDecoder: skips={skips} must be between 0 and {available}, the encoder "
                f"features finer than its coarsest (strides {self.encoder_strides})"
            )
        self.skips = skips
        coarsest = self.encoder_channels[-1]
        self.score_coarsest = conv_norm_act(coarsest, channels, 3, norm, activation)
        # coarse to fine, as the stages run
        skip_channels = self.encoder_channels[-1 - skips : -1][::-1]
        self.score_skips = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in skip_channels)
        self.stage_channels = [channels] * (skips + 1)

    def forward_stages(
        self, features: list[torch.Tensor], indices: list[torch.Tensor] | None = None
    ) -> list[torch.Tensor]:
        self.check_features(features)
        x = self.attend(0, self.score_coarsest(features[-1]))
        stages = [x]
        skips = features[-1 - self.skips : -1][::-1]
        for i, (skip, score) in enumerate(zip(skips, self.score_skips, strict=True), start=1):
            skip_score = score(skip)
            x = self.attend(i, resize(x, skip_score.shape[-2:]) + skip_score)
            stages.append(x)
        return stages
