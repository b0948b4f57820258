"""Segmentation networks composed from interchangeable encoders, attention and decoders."""

from seglab.models.attention import PixelSelfAttention
from seglab.models.decoders import Decoder, TransposedConvDecoder, UNetDecoder
from seglab.models.encoders import ConvEncoder
from seglab.models.segmenter import Segmenter

__all__ = [
    "ConvEncoder",
    "Decoder",
    "PixelSelfAttention",
    "Segmenter",
    "TransposedConvDecoder",
    "UNetDecoder",
]
