"""Attention blocks: built from a channel count (``attention_factory(channels=...)``), keep shapes.

Disabling attention needs no class here: the ``none`` config builds ``torch.nn.Identity``,
which ignores its arguments.
"""

import torch
import torch.nn.functional as F
from torch import nn


class PixelSelfAttention(nn.Module):
    """Non-local self-attention: every pixel attends to every (pooled) pixel of the map.

    Convolutions see a bounded neighbourhood; this gives each position the whole image as
    context at the cost of one attention over ``H*W`` queries.

    Args:
        channels: channels of the input, and of the output.
        reduction: keys and values are average-pooled by this factor, so the attention matrix
            shrinks by ``reduction**2`` and stays affordable at high resolution.
        key_channels: channels of queries and keys (``None``: ``channels``); lower it to save
            compute. Must be divisible by ``heads``.
        heads: attention heads; ``channels`` and ``key_channels`` are split evenly among them.
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 1,
        key_channels: int | None = None,
        heads: int = 1,
    ) -> None:
        super().__init__()
        key_channels = channels if key_channels is None else key_channels
        if reduction < 1:
            raise ValueError(f"PixelSelfAttention: reduction={reduction} must be >= 1")
        if heads < 1 or channels % heads or key_channels % heads:
            raise ValueError(
                f"PixelSelfAttention: heads={heads} must divide channels={channels} "
                f"and key_channels={key_channels}"
            )
        self.reduction = reduction
        self.heads = heads
        self.query = nn.Conv2d(channels, key_channels, 1)
        self.key = nn.Conv2d(channels, key_channels, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        # Zero scale: the block starts as the identity, so adding it to a trained network or a
        # fresh one does not disturb the features the rest of the network expects.
        self.scale = nn.Parameter(torch.zeros(1))

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, heads, H*W, C/heads), as scaled_dot_product_attention wants."""
        n, c = x.shape[:2]
        return x.reshape(n, self.heads, c // self.heads, -1).transpose(-1, -2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        context = x
        if self.reduction > 1:
            # ceil_mode keeps at least one key for maps smaller than the reduction.
            context = F.avg_pool2d(x, self.reduction, ceil_mode=True)
        attended = F.scaled_dot_product_attention(
            self._tokens(self.query(x)),
            self._tokens(self.key(context)),
            self._tokens(self.value(context)),
        )
        attended = attended.transpose(-1, -2).reshape(n, c, h, w)
        return x + self.scale * self.proj(attended)
