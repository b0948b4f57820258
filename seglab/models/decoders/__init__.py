"""Decoders: encoder features (fine to coarse) in, one feature map out, built in stages.

Decoders are built from the encoder's layout (``decoder(encoder_channels=...,
encoder_strides=...)``); see ``Decoder`` for what they share.
"""

from seglab.models.decoders.base import Decoder
from seglab.models.decoders.deeplabv3plus import DeepLabV3PlusDecoder
from seglab.models.decoders.fcn import FCNDecoder
from seglab.models.decoders.fpn import FPNDecoder
from seglab.models.decoders.mlp import MLPDecoder
from seglab.models.decoders.pspnet import PSPDecoder
from seglab.models.decoders.segnet import SegNetDecoder
from seglab.models.decoders.transposed import TransposedConvDecoder
from seglab.models.decoders.unet import UNetDecoder

__all__ = [
    "DeepLabV3PlusDecoder",
    "Decoder",
    "FCNDecoder",
    "FPNDecoder",
    "MLPDecoder",
    "PSPDecoder",
    "SegNetDecoder",
    "TransposedConvDecoder",
    "UNetDecoder",
]
