"""The segmentation network: encoder, optional attention, decoder and a 1x1 classifier head."""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from seglab.models.layers import resize

ATTENTION_SITES = ("bottleneck", "decoder")


class Segmenter(nn.Module):
    """Composes interchangeable parts into a network that maps any image size to logits.

    A plain ``nn.Module``: Hydra and Lightning only build and train it. Decoder and attention
    are passed as factories because their channel counts come from the encoder.

    Args:
        encoder: module with ``out_channels`` and ``strides`` (one per feature, fine to coarse)
            whose forward returns its features fine to coarse; if it has ``in_channels``, inputs
            are checked against it.
        decoder: ``decoder(encoder_channels=..., encoder_strides=...)`` builds a
            ``seglab.models.decoders.Decoder``.
        num_classes: channels of the logits.
        attention: ``attention(channels=...)`` builds a shape-preserving module; ``None`` for
            none.
        attention_at: ``"bottleneck"`` runs one attention block on the coarsest encoder
            feature, where attending over all positions is cheapest; ``"decoder"`` runs one
            after every decoder stage.
        aux_weight: weight of the auxiliary (deep-supervision) loss; above 0, every decoder
            stage but the last gets a 1x1 classifier whose logits ``forward_with_aux`` returns,
            so that coarse stages learn the classes directly. Needs a multi-stage decoder.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: Callable[..., nn.Module],
        num_classes: int,
        attention: Callable[..., nn.Module] | None = None,
        attention_at: str = "bottleneck",
        aux_weight: float = 0.0,
    ) -> None:
        super().__init__()
        if attention_at not in ATTENTION_SITES:
            raise ValueError(
                f"Segmenter: attention_at={attention_at!r} is not supported; "
                f"choose one of {', '.join(repr(s) for s in ATTENTION_SITES)}"
            )
        if num_classes < 1:
            raise ValueError(f"Segmenter: num_classes={num_classes} must be positive")
        if aux_weight < 0:
            raise ValueError(f"Segmenter: aux_weight={aux_weight} must be >= 0")
        encoder_channels = [int(c) for c in encoder.out_channels]
        self.encoder = encoder
        self.in_channels: int | None = getattr(encoder, "in_channels", None)
        self.size_multiple = max(int(s) for s in encoder.strides)
        self.attention_at = attention_at
        self.decoder = decoder(
            encoder_channels=encoder_channels, encoder_strides=list(encoder.strides)
        )
        self.uses_indices = bool(getattr(self.decoder, "requires_indices", False))
        if self.uses_indices and not hasattr(encoder, "forward_with_indices"):
            raise ValueError(
                f"Segmenter: {type(self.decoder).__name__} unpools with the encoder's "
                f"max-pooling indices, which {type(encoder).__name__} does not provide; "
                "use an encoder that max-pools (model/encoder=conv) or another decoder"
            )
        self.attention = nn.Identity()
        if attention is not None and attention_at == "bottleneck":
            self.attention = attention(channels=encoder_channels[-1])
        elif attention is not None:
            self.decoder.add_stage_attention(attention)
        self.head = nn.Conv2d(self.decoder.out_channels, num_classes, 1)
        self.aux_weight = float(aux_weight)
        self.aux_heads = nn.ModuleList()
        if aux_weight > 0:
            stage_channels = self.decoder.stage_channels[:-1]
            if not stage_channels:
                raise ValueError(
                    f"Segmenter: aux_weight={aux_weight} needs a decoder with several stages; "
                    f"{type(self.decoder).__name__} here has one. Set model.aux_weight=0"
                )
            self.aux_heads.extend(nn.Conv2d(c, num_classes, 1) for c in stage_channels)

    def _check_and_pad(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or (self.in_channels is not None and x.shape[1] != self.in_channels):
            channels = "C" if self.in_channels is None else self.in_channels
            raise ValueError(
                f"Segmenter: expected input shaped (N, {channels}, H, W), got {tuple(x.shape)}"
            )
        # Pooling floors odd sizes, which would misalign features across scales: pad so that
        # every stride divides the size, by replicating the border rather than adding fake black.
        # Padding by zero too, rather than branching on the size, keeps the size symbolic when
        # the model is exported (seglab-export): a branch would fix it to the sample's.
        pad_h = -x.shape[-2] % self.size_multiple
        pad_w = -x.shape[-1] % self.size_multiple
        return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")

    def _decode(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.uses_indices:
            features, indices = self.encoder.forward_with_indices(x)
        else:
            features, indices = self.encoder(x), None
        features = [*features[:-1], self.attention(features[-1])]
        return self.decoder.forward_stages(features, indices)

    @staticmethod
    def _to_input_size(
        logits: torch.Tensor, padded: torch.Tensor, height: int, width: int
    ) -> torch.Tensor:
        return resize(logits, padded.shape[-2:])[..., :height, :width]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes, H, W) for an image batch (N, in_channels, H, W) of any size."""
        height, width = x.shape[-2:]
        padded = self._check_and_pad(x)
        stages = self._decode(padded)
        return self._to_input_size(self.head(stages[-1]), padded, height, width)

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits and the auxiliary heads' logits (empty without them), all at input size."""
        height, width = x.shape[-2:]
        padded = self._check_and_pad(x)
        stages = self._decode(padded)
        logits = self._to_input_size(self.head(stages[-1]), padded, height, width)
        aux = [
            self._to_input_size(head(stage), padded, height, width)
            for head, stage in zip(self.aux_heads, stages, strict=False)
        ]
        return logits, aux

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel class probabilities (softmax over classes); call ``eval()`` first."""
        return self(x).softmax(dim=1)
