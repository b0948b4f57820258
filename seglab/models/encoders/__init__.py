"""Encoders: image in, feature maps out, fine to coarse.

Every encoder exposes ``in_channels``, ``out_channels`` and ``strides`` (one entry per returned
feature, strides non-decreasing), so that the Segmenter can check and pad inputs and build
decoders and attention without knowing which encoder it holds. An encoder whose downsampling
is max-pooling may also offer ``forward_with_indices(x) -> (features, indices)`` for decoders
that unpool (``indices[i]`` pools ``features[i]`` into the next stage's input).
"""

from seglab.models.encoders.conv import ConvEncoder

__all__ = ["ConvEncoder"]
