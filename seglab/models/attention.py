"""Attention blocks: built from a channel count (``attention_factory(channels=...)``), keep shapes.

Disabling attention needs no class here: the ``none`` config builds ``torch.nn.Identity``,
which ignores its arguments.
"""

import torch
import torch.nn.functional as F
from torch import nn

from seglab.models.layers import check_option


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
        """(N, C, H, W) -> (N, heads, H*W, C/heads), as scaled_dot_product_attention wants.

        Contiguous, because the fused (flash) kernels need a unit stride in the last dimension
        and otherwise the math fallback materialises the whole (H*W)^2 / reduction^2 matrix.
        """
        n, c = x.shape[:2]
        return x.reshape(n, self.heads, c // self.heads, -1).transpose(-1, -2).contiguous()

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


def _hidden_channels(owner: str, channels: int, reduction: int) -> int:
    """Width of a squeeze-and-excitation bottleneck: at least 1, so few channels still work."""
    if channels < 1:
        raise ValueError(f"{owner}: channels={channels} must be positive")
    if reduction < 1:
        raise ValueError(f"{owner}: reduction={reduction} must be >= 1")
    return max(1, channels // reduction)


def _channel_mlp(channels: int, hidden: int) -> nn.Sequential:
    """The squeeze-and-excitation bottleneck, as 1x1 convs so it acts on (N, C, 1, 1) maps."""
    return nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, channels, 1))


class SCSEAttention(nn.Module):
    """Concurrent spatial and channel squeeze & excitation (Roy et al., 2018).

    Channel SE reweights whole feature maps from their global average (what is present);
    spatial SE reweights pixels from a 1x1 projection (where it is). Both are sigmoid gates,
    so the block only rescales its input and costs little anywhere in a network.

    Args:
        channels: channels of the input, and of the output.
        reduction: the channel gate's bottleneck is ``channels // reduction`` wide (at least 1).
        combine: ``"add"`` sums the channel- and spatially-gated maps, as the MICCAI paper
            does; ``"max"`` keeps their elementwise maximum (the journal version's max-out),
            so each activation follows whichever gate lets more of it through.
    """

    def __init__(self, channels: int, reduction: int = 16, combine: str = "add") -> None:
        super().__init__()
        hidden = _hidden_channels("SCSEAttention", channels, reduction)
        check_option("SCSEAttention", "combine", combine, ("add", "max"))
        self.combine = combine
        self.channel_gate = _channel_mlp(channels, hidden)
        self.spatial_gate = nn.Conv2d(channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channel = x * self.channel_gate(x.mean(dim=(-2, -1), keepdim=True)).sigmoid()
        spatial = x * self.spatial_gate(x).sigmoid()
        return channel + spatial if self.combine == "add" else torch.maximum(channel, spatial)


class CBAM(nn.Module):
    """Convolutional block attention module (Woo et al., 2018): channel, then spatial gating.

    Unlike plain squeeze & excitation, both gates look at max- as well as average-pooled
    descriptors: the maximum keeps the evidence of small, strongly responding objects that an
    average dilutes.

    Args:
        channels: channels of the input, and of the output.
        reduction: the shared channel MLP's bottleneck is ``channels // reduction`` wide (at
            least 1).
        kernel_size: odd size of the convolution over the channel-wise average and max maps
            that produces the spatial gate; the paper's 7 gives each gate a wide context.
    """

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        hidden = _hidden_channels("CBAM", channels, reduction)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(
                f"CBAM: kernel_size={kernel_size} must be odd and positive so the spatial "
                "gate keeps the map's size"
            )
        self.channel_mlp = _channel_mlp(channels, hidden)
        self.spatial_conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        average = self.channel_mlp(x.mean(dim=(-2, -1), keepdim=True))
        maximum = self.channel_mlp(x.amax(dim=(-2, -1), keepdim=True))
        x = x * (average + maximum).sigmoid()
        descriptors = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * self.spatial_conv(descriptors).sigmoid()
