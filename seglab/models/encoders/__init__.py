"""Encoders: image in, feature maps out, fine to coarse.

Every encoder exposes ``in_channels``, ``out_channels`` and ``strides`` (one entry per returned
feature, strides non-decreasing), so that the Segmenter can check and pad inputs and build
decoders and attention without knowing which encoder it holds. An encoder whose downsampling
is max-pooling may also offer ``forward_with_indices(x) -> (features, indices)`` for decoders
that unpool (``indices[i]`` pools ``features[i]`` into the next stage's input).

The library-backed encoders (torchvision's ResNet and MobileNetV3, any timm model) take the
same ``in_channels``, ``weights``, ``weights_path`` and ``output_stride`` options.
"""

from seglab.models.encoders.backbones import MobileNetV3Encoder, ResNetEncoder
from seglab.models.encoders.conv import ConvEncoder
from seglab.models.encoders.timm_encoder import TimmEncoder

__all__ = ["ConvEncoder", "MobileNetV3Encoder", "ResNetEncoder", "TimmEncoder"]
