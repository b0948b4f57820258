"""Segmentation networks composed from interchangeable encoders, attention and decoders."""

from seglab.models.attention import CBAM, PixelSelfAttention, SCSEAttention
from seglab.models.decoders import (
    Decoder,
    DeepLabV3PlusDecoder,
    FCNDecoder,
    FPNDecoder,
    MLPDecoder,
    PSPDecoder,
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
    "FCNDecoder",
    "FPNDecoder",
    "MLPDecoder",
    "MobileNetV3Encoder",
    "PixelSelfAttention",
    "PSPDecoder",
    "ResNetEncoder",
    "SCSEAttention",
    "SegNetDecoder",
    "Segmenter",
    "TimmEncoder",
    "TransposedConvDecoder",
    "UNetDecoder",
]
