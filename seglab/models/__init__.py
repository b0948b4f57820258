"""Segmentation networks composed from interchangeable encoders, attention and decoders."""

from seglab.models.attention import CBAM, PixelSelfAttention, SCSEAttention
from seglab.models.decoders import (
    Decoder,
    DeepLabV3PlusDecoder,
    FPNDecoder,
    MLPDecoder,
    SegNetDecoder,
    TransposedConvDecoder,
    UNetDecoder,
)
from seglab.models.encoders import ConvEncoder, MobileNetV3Encoder, ResNetEncoder, TimmEncoder
from seglab.models.segmenter import Segmenter

__all__ = [
    "CBAM",
    "ConvEncoder",
    "DeepLabV3PlusDecoder",
    "Decoder",
    "FPNDecoder",
    "MLPDecoder",
    "MobileNetV3Encoder",
    "PixelSelfAttention",
    "ResNetEncoder",
    "SCSEAttention",
    "SegNetDecoder",
    "Segmenter",
    "TimmEncoder",
    "TransposedConvDecoder",
    "UNetDecoder",
]
