"""The seed network's encoder: plain 3x3 convolutions and 2x2 max-pooling."""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from seglab.models.layers import ACTIVATIONS, NORMS, check_option, check_positive, conv_stack


class ConvEncoder(nn.Module):
    """The classic conv/ReLU/max-pool encoder of the project's seed network.

    Stage 0 runs at full resolution so that a skip-connected decoder can recover pixel-exact
    boundaries; each later stage halves the resolution with a 2x2 max-pool before its convs.

    Args:
        in_channels: channels of the input image.
        widths: output channels of each stage; the number of stages is ``len(widths)``.
        convs_per_stage: 3x3 convolutions per stage.
        norm: ``"batch"`` or ``"none"`` after each convolution.
        activation: ``"relu"``, ``"gelu"`` or ``"silu"`` after each convolution.
    """

    def __init__(
        self,
        in_channels: int = 3,
        widths: Sequence[int] = (16, 32, 64, 128),
        convs_per_stage: int = 2,
        norm: str = "batch",
        activation: str = "relu",
    ) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if not widths or min(widths) < 1:
            raise ValueError(
                f"ConvEncoder: widths={widths} must be a non-empty list of positive ints"
            )
        check_positive("ConvEncoder", in_channels=in_channels, convs_per_stage=convs_per_stage)
        check_option("ConvEncoder", "norm", norm, NORMS)
        check_option("ConvEncoder", "activation", activation, list(ACTIVATIONS))
        self.in_channels = in_channels
        self.out_channels = widths
        self.strides = [2**i for i in range(len(widths))]
        self.stages = nn.ModuleList(
            conv_stack(
                in_channels if i == 0 else widths[i - 1], width, convs_per_stage, norm, activation
            )
            for i, width in enumerate(widths)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for i, stage in enumerate(self.stages):
            x = stage(x if i == 0 else F.max_pool2d(x, 2))
            features.append(x)
        return features

    def forward_with_indices(
        self, x: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Features plus the argmax indices of each max-pool, for decoders that unpool.

        ``indices[i]`` records where the maxima of ``features[i]`` went when it was pooled
        into the input of stage ``i + 1``.
        """
        features: list[torch.Tensor] = []
        indices: list[torch.Tensor] = []
        for i, stage in enumerate(self.stages):
            if i > 0:
                x, index = F.max_pool2d(x, 2, return_indices=True)
                indices.append(index)
            x = stage(x)
            features.append(x)
        return features, indices
