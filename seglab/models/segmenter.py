"""The segmentation network: encoder, optional attention, decoder and a 1x1 classifier head."""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

ATTENTION_SITES = ("bottleneck",)


class Segmenter(nn.Module):
    """Composes interchangeable parts into a network that maps any image size to logits.

    A plain ``nn.Module``: Hydra and Lightning only build and train it. Decoder and attention
    are passed as factories because their channel counts come from the encoder.

    Args:
        encoder: module with ``out_channels`` and ``strides`` (one per feature, fine to coarse)
            whose forward returns its features fine to coarse; if it has ``in_channels``, inputs
            are checked against it.
        decoder: ``decoder(encoder_channels=...)`` builds a module with ``out_channels`` that
            turns the features into one map at the finest encoder stride.
        num_classes: channels of the logits.
        attention: ``attention(channels=...)`` builds a shape-preserving module; ``None`` for
            none.
        attention_at: where the attention runs; only ``"bottleneck"`` (the coarsest feature,
            where attending over all positions is cheapest) is supported.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: Callable[..., nn.Module],
        num_classes: int,
        attention: Callable[..., nn.Module] | None = None,
        attention_at: str = "bottleneck",
    ) -> None:
        super().__init__()
        if attention_at not in ATTENTION_SITES:
            raise ValueError(
                f"Segmenter: attention_at={attention_at!r} is not supported; "
                f"choose one of {', '.join(repr(s) for s in ATTENTION_SITES)}"
            )
        if num_classes < 1:
            raise ValueError(f"Segmenter: num_classes={num_classes} must be positive")
        encoder_channels = [int(c) for c in encoder.out_channels]
        self.encoder = encoder
        self.in_channels: int | None = getattr(encoder, "in_channels", None)
        self.size_multiple = max(int(s) for s in encoder.strides)
        self.attention_at = attention_at
        self.attention = (
            nn.Identity() if attention is None else attention(channels=encoder_channels[-1])
        )
        self.decoder = decoder(encoder_channels=encoder_channels)
        self.head = nn.Conv2d(self.decoder.out_channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes, H, W) for an image batch (N, in_channels, H, W) of any size."""
        if x.ndim != 4 or (self.in_channels is not None and x.shape[1] != self.in_channels):
            channels = "C" if self.in_channels is None else self.in_channels
            raise ValueError(
                f"Segmenter: expected input shaped (N, {channels}, H, W), got {tuple(x.shape)}"
            )
        height, width = x.shape[-2:]
        # Pooling floors odd sizes, which would misalign features across scales: pad so that
        # every stride divides the size, by replicating the border rather than adding fake black.
        pad_h = -height % self.size_multiple
        pad_w = -width % self.size_multiple
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        features = self.encoder(x)
        features = [*features[:-1], self.attention(features[-1])]
        logits = self.head(self.decoder(features))
        if logits.shape[-2:] != x.shape[-2:]:
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return logits[..., :height, :width]

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel class probabilities (softmax over classes); call ``eval()`` first."""
        return self(x).softmax(dim=1)
