"""What every decoder shares: the encoder's layout, norm and activation options, its stages and
attention after them."""

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import torch
from torch import nn

from seglab.models.layers import ACTIVATIONS, NORMS, check_option


class Decoder(nn.Module, ABC):
    """Base of the decoders: encoder features (fine to coarse) in, one feature map out.

    A decoder works in stages, each ending in a feature map; the last stage's map is the
    output. Exposing the stages lets the Segmenter put attention after each of them and
    attach auxiliary heads to the intermediate ones without knowing the architecture.
    Subclasses set ``stage_channels`` (channels of each stage's output, in order) in their
    ``__init__`` and implement ``forward_stages``, calling ``self.attend(i, x)`` on the output
    of stage ``i`` (``chain_stages`` does so for decoders whose stages each refine the last).

    Args:
        encoder_channels: channels of the encoder features, fine to coarse.
        encoder_strides: their strides; ``None`` assumes 1, 2, 4, ...
        norm: the decoder's ``norm`` option, checked here: ``"batch"`` or ``"none"``.
        activation: the decoder's ``activation`` option, checked here: ``"relu"``, ``"gelu"``
            or ``"silu"``.
    """

    #: Whether ``forward_stages`` needs the encoder's max-pooling indices.
    requires_indices = False

    def __init__(
        self,
        encoder_channels: Sequence[int],
        encoder_strides: Sequence[int] | None,
        norm: str,
        activation: str,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.encoder_channels = [int(c) for c in encoder_channels]
        if not self.encoder_channels or min(self.encoder_channels) < 1:
            raise ValueError(
                f"{owner}: encoder_channels={self.encoder_channels} must be a non-empty list "
                "of positive ints"
            )
        if encoder_strides is None:
            encoder_strides = [2**i for i in range(len(self.encoder_channels))]
        self.encoder_strides = [int(s) for s in encoder_strides]
        if len(self.encoder_strides) != len(self.encoder_channels) or any(
            b < a for a, b in zip(self.encoder_strides, self.encoder_strides[1:], strict=False)
        ):
            raise ValueError(
                f"{owner}: encoder_strides={self.encoder_strides} needs one non-decreasing "
                f"entry per encoder feature ({len(self.encoder_channels)})"
            )
        check_option(owner, "norm", norm, NORMS)
        check_option(owner, "activation", activation, list(ACTIVATIONS))
        self.stage_channels: list[int] = []
        self.stage_attention = nn.ModuleList()

    @property
    def out_channels(self) -> int:
        return self.stage_channels[-1]

    def add_stage_attention(self, attention: Callable[..., nn.Module]) -> None:
        """Build ``attention(channels=...)`` for the output of every stage."""
        self.stage_attention = nn.ModuleList(attention(channels=c) for c in self.stage_channels)

    def attend(self, stage: int, x: torch.Tensor) -> torch.Tensor:
        return self.stage_attention[stage](x) if len(self.stage_attention) else x

    def check_features(self, features: list[torch.Tensor]) -> None:
        if len(features) != len(self.encoder_channels):
            raise ValueError(
                f"{type(self).__name__}: expected {len(self.encoder_channels)} encoder "
                f"features, got {len(features)}"
            )

    def chain_stages(
        self, x: torch.Tensor, count: int, stage: Callable[[int, torch.Tensor], torch.Tensor]
    ) -> list[torch.Tensor]:
        """Run ``count`` stages from ``x``, stage ``i`` mapping the last output to the next.

        Each output is attended before the next stage takes it. Without stages (an encoder of
        one resolution) ``x`` itself is the only stage.
        """
        outputs = []
        for i in range(count):
            x = self.attend(i, stage(i, x))
            outputs.append(x)
        return outputs or [self.attend(0, x)]

    @abstractmethod
    def forward_stages(
        self, features: list[torch.Tensor], indices: list[torch.Tensor] | None = None
    ) -> list[torch.Tensor]:
        """The output of every stage, in order; the last one is the decoder's output."""

    def forward(
        self, features: list[torch.Tensor], indices: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        return self.forward_stages(features, indices)[-1]


#: Default decoder widths mirror the encoder up to this many channels, so that wide backbones
#: (ResNet-50 ends at 2048) do not get a decoder heavier than themselves.
MAX_DEFAULT_WIDTH = 256


def step_widths(owner: str, defaults: list[int], widths: Sequence[int] | None) -> list[int]:
    """Check user-given widths (one per step), or mirror the encoder's, capped."""
    if widths is None:
        return [min(w, MAX_DEFAULT_WIDTH) for w in defaults]
    widths = [int(w) for w in widths]
    if len(widths) != len(defaults) or min(widths, default=1) < 1:
        raise ValueError(
            f"{owner}: widths={widths} needs one positive entry per upsampling step "
            f"({len(defaults)} for this encoder)"
        )
    return widths


def first_used_level(owner: str, strides: Sequence[int], min_stride: int) -> int:
    """Index of the finest encoder feature at ``min_stride`` or coarser.

    Dense decoders that work on every level pay for the finest one most: a stride-1 feature
    would run the whole decoder at full resolution, so finer features are left out.
    """
    if min_stride < 1 or min_stride > strides[-1]:
        raise ValueError(
            f"{owner}: min_stride={min_stride} must be positive and at most the encoder's "
            f"coarsest stride ({strides[-1]}, strides {list(strides)}); lower it to use this "
            "encoder"
        )
    return next(i for i, stride in enumerate(strides) if stride >= min_stride)
