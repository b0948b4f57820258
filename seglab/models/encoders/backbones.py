"""Encoders built on torchvision's classification networks, pretrained or not.

Their modules keep torchvision's names (``conv1``, ``layer1.0.conv1``, ``features.3``), so a
state dict that torch hub downloads for the classifier loads into the encoder once its
classifier keys are dropped, and an encoder's own state dict loads back the same way.
"""

from typing import Any

import torch
import torchvision
from torch import nn

from seglab.models.encoders.pretrained import (
    PretrainedEncoder,
    dilate,
    load_weights,
    read_state_dict,
    weights_unavailable,
    with_input_channels,
)
from seglab.models.layers import check_option


class TorchvisionEncoder(PretrainedEncoder):
    """What the torchvision encoders share: resolving and loading their weights.

    Besides ``"imagenet"`` / ``"DEFAULT"``, ``weights`` takes any entry of the architecture's
    torchvision weights enum (``ResNet50_Weights``, ``MobileNet_V3_Large_Weights``, ...) such
    as ``"IMAGENET1K_V2"``; they are fetched through torch hub's cache (``$TORCH_HOME``). A
    ``weights_path`` file is torch hub's download for the network or an encoder's own
    ``state_dict()``, loaded strictly once the classifier's keys are dropped.

    Subclasses name the state-dict key of their first convolution and the top-level modules
    of the classifier that the encoder drops.
    """

    first_conv: str
    classifier: tuple[str, ...]

    def _weights_entry(self, arch: str) -> torchvision.models.WeightsEnum | None:
        """The torchvision weights named by ``weights``, checked before anything is built."""
        if self.weights is None:
            return None
        entries = torchvision.models.get_model_weights(arch)
        owner = type(self).__name__
        check_option(owner, "weights", self.weights, ["imagenet", *entries.__members__])
        return entries["DEFAULT" if self.weights == "imagenet" else self.weights]

    def _load_pretrained(self, arch: str, entry: torchvision.models.WeightsEnum | None) -> None:
        owner = type(self).__name__
        if self.weights_path is not None:
            state = read_state_dict(owner, self.weights_path)
            source = f"weights_path={str(self.weights_path)!r}"
        elif entry is not None:
            try:
                state = entry.get_state_dict(progress=False)
            except (OSError, RuntimeError) as error:
                raise weights_unavailable(owner, arch, self.weights, error, entry.url) from error
            source = f"torchvision's {entry}"
        else:
            return
        load_weights(self, state, source, self.first_conv, self.classifier)


class ResNetEncoder(TorchvisionEncoder):
    """torchvision's ResNet: the stem (after its ReLU) and the outputs of its four stages.

    Features at strides 2, 4, 8, 16, 32 with 64, 64, 128, 256, 512 channels (ResNet-18/34) or
    64, 256, 512, 1024, 2048 (ResNet-50 and deeper).

    Args:
        depth: 18, 34, 50, 101 or 152 layers; ``weights`` names an entry of
            ``ResNet<depth>_Weights``.
        **options: ``in_channels``, ``weights``, ``weights_path`` and ``output_stride``, as
            `PretrainedEncoder` and `TorchvisionEncoder` describe them.
    """

    first_conv = "conv1"
    classifier = ("fc",)
    DEPTHS = (18, 34, 50, 101, 152)

    def __init__(self, depth: int = 18, **options: Any) -> None:
        super().__init__(**options)
        check_option(type(self).__name__, "depth", depth, self.DEPTHS)
        arch = f"resnet{depth}"
        entry = self._weights_entry(arch)
        net = torchvision.models.get_model(arch)
        self.conv1 = with_input_channels(net.conv1, self.in_channels)
        self.bn1, self.relu, self.maxpool = net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1,
            net.layer2,
            net.layer3,
            net.layer4,
        )
        expansion = type(net.layer1[0]).expansion
        self.out_channels = [64, *(width * expansion for width in (64, 128, 256, 512))]
        self.strides = [2, *dilate(self._stages(), (4, 8, 16, 32), self.output_stride)]
        self._load_pretrained(arch, entry)

    def _stages(self) -> list[nn.Module]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))
        features = [x]
        x = self.maxpool(x)
        for stage in self._stages():
            x = stage(x)
            features.append(x)
        return features


class MobileNetV3Encoder(TorchvisionEncoder):
    """torchvision's MobileNetV3: the last block of ``features`` at each resolution.

    Features at strides 2, 4, 8, 16, 32; the last is the final 1x1 convolution (960 channels
    for ``large``, 576 for ``small``), the others 16, 24, 40, 112 (large) or 16, 16, 24, 48
    (small).

    Args:
        size: ``"large"`` or ``"small"``; ``weights`` names an entry of
            ``MobileNet_V3_<Size>_Weights``.
        **options: ``in_channels``, ``weights``, ``weights_path`` and ``output_stride``, as
            `PretrainedEncoder` and `TorchvisionEncoder` describe them.
    """

    first_conv = "features.0.0"
    classifier = ("classifier",)

    def __init__(self, size: str = "large", **options: Any) -> None:
        super().__init__(**options)
        check_option(type(self).__name__, "size", size, ("large", "small"))
        arch = f"mobilenet_v3_{size}"
        entry = self._weights_entry(arch)
        self.features = torchvision.models.get_model(arch).features
        self.features[0][0] = with_input_channels(self.features[0][0], self.in_channels)
        block_strides, stride = [], 1
        for block in self.features:
            for conv in block.modules():
                if isinstance(conv, nn.Conv2d):
                    stride *= conv.stride[0]
            block_strides.append(stride)
        # A feature is taken after the last block of each resolution.
        next_strides = [*block_strides[1:], None]
        self.taps = [i for i, s in enumerate(block_strides) if next_strides[i] != s]
        strides = dilate(self.features, block_strides, self.output_stride)
        self.out_channels = [self.features[i].out_channels for i in self.taps]
        self.strides = [strides[i] for i in self.taps]
        self._load_pretrained(arch, entry)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for i, block in enumerate(self.features):
            x = block(x)
            if i in self.taps:
                features.append(x)
        return features
