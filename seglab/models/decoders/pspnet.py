"""PSPNet decoder: a pyramid of pooled context on the coarsest feature, fused by a 3x3 conv."""

from collections.abc import Sequence

import torch
from torch import nn

from seglab.models.decoders.base import Decoder
from seglab.models.layers import ACTIVATIONS, check_positive, conv_norm_act, resize


def average_pool_matrix(size: int, bins: int, like: torch.Tensor) -> torch.Tensor:
    """``(bins, size)`` weights that average ``size`` positions into ``bins`` cells along one axis.

    Cell ``i`` spans ``floor(i * size / bins)`` to ``ceil((i + 1) * size / bins)``, the cells of
    ``F.adaptive_avg_pool2d``, so the cells overlap where ``bins`` does not divide ``size`` and
    repeat positions where ``bins`` exceeds it (a map smaller than the pyramid). Built from the
    size with tensor arithmetic, the pooling stays valid for any size once exported with a
    symbolic one (ONNX), where ``adaptive_avg_pool2d`` fixes its cells to the sample's size.
    """
    cells = torch.arange(bins, device=like.device).unsqueeze(1)
    starts = cells * size // bins
    ends = ((cells + 1) * size + bins - 1) // bins
    positions = torch.arange(size, device=like.device).unsqueeze(0)
    inside = ((positions >= starts) & (positions < ends)).to(like.dtype)
    return inside / inside.sum(dim=1, keepdim=True)


class PSPDecoder(Decoder):
    """Pyramid pooling on the coarsest feature: context from the whole image and its regions.

    Each bin size ``b`` average-pools the coarsest feature into ``b x b`` cells, reduces them
    by a 1x1 conv and upsamples them back, so every position sees a summary of the whole map
    (bin 1) and of its coarse regions; the pyramid is concatenated with the feature itself and
    fused by a 3x3 conv. Stages: the upsampled pyramid (its context alone, so that an
    auxiliary head supervises what the pooled regions say about the classes), then the fused
    map. The output stays at the coarsest stride; the paper runs on a dilated ResNet (here
    ``model.encoder.output_stride=8``). The paper's auxiliary head reads an encoder feature
    instead, which ``Segmenter`` heads do not.

    The branch of bin 1 has no norm: its map is 1x1, so BatchNorm would fail to train with a
    batch of one. Bins larger than the map repeat its positions, as adaptive pooling does.

    Args:
        encoder_channels: channels of the encoder features, fine to coarse.
        encoder_strides: their strides; ``None`` assumes 1, 2, 4, ...
        bins: cells per side of each pooling (the paper's 1, 2, 3, 6).
        pool_channels: channels each pooled map is reduced to (the paper uses the coarsest
            feature's channels divided by the number of bins, 512 for ResNet-50).
        decoder_channels: channels of the fusing 3x3 conv, the output (the paper uses 512).
        norm: ``"batch"`` or ``"none"`` after each convolution but bin 1's.
        activation: ``"relu"``, ``"gelu"`` or ``"silu"`` after each convolution.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        encoder_strides: Sequence[int] | None = None,
        bins: Sequence[int] = (1, 2, 3, 6),
        pool_channels: int = 64,
        decoder_channels: int = 128,
        norm: str = "batch",
        activation: str = "relu",
    ) -> None:
        super().__init__(encoder_channels, encoder_strides, norm, activation)
        check_positive("PSPDecoder", pool_channels=pool_channels, decoder_channels=decoder_channels)
        self.bins = [int(b) for b in bins]
        if not self.bins or min(self.bins) < 1:
            raise ValueError(
                f"PSPDecoder: bins={self.bins} must be a non-empty list of positive cell "
                "counts, e.g. [1, 2, 3, 6]"
            )
        coarsest = self.encoder_channels[-1]
        self.reductions = nn.ModuleList(
            nn.Sequential(nn.Conv2d(coarsest, pool_channels, 1), ACTIVATIONS[activation]())
            if b == 1
            else conv_norm_act(coarsest, pool_channels, 1, norm, activation)
            for b in self.bins
        )
        context = len(self.bins) * pool_channels
        self.fuse = conv_norm_act(coarsest + context, decoder_channels, 3, norm, activation)
        self.stage_channels = [context, decoder_channels]

    def forward_stages(
        self, features: list[torch.Tensor], indices: list[torch.Tensor] | None = None
    ) -> list[torch.Tensor]:
        self.check_features(features)
        x = features[-1]
        height, width = x.shape[-2:]
        pyramid = []
        for bins, reduce in zip(self.bins, self.reductions, strict=True):
            pooled = (
                average_pool_matrix(height, bins, x)
                @ x
                @ average_pool_matrix(width, bins, x).transpose(0, 1)
            )
            pyramid.append(resize(reduce(pooled), (height, width)))
        context = self.attend(0, torch.cat(pyramid, dim=1))
        return [context, self.attend(1, self.fuse(torch.cat([x, context], dim=1)))]
