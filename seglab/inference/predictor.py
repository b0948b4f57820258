"""A trained network as a function from an image to its mask, what ``seglab.load(ckpt_path)``
returns (`seglab.workflows.prediction` builds it from a checkpoint or an ONNX file).

Images are read and normalised as the datamodules read them, so predictions match what
``seglab-eval`` scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from seglab.inference.inferer import Inferer
from seglab.task_modes import Multiclass, TaskMode

#: What a predictor accepts as an image.
ImageInput = str | Path | Image.Image | np.ndarray | Tensor


def read_image(image: ImageInput, channels: int = 3) -> Tensor:
    """A float ``(channels, H, W)`` image in [0, 1] from a path, PIL image, ``(H, W[, C])``
    uint8 array or ``(C, H, W)`` uint8 / [0, 1] float tensor.

    Files and PIL images are converted like the datamodules convert them (RGB: grayscale
    replicated, palette applied, alpha dropped; 1 channel: grayscale). Raises ``OSError`` for
    a file PIL cannot read and ``ValueError`` for an array of another shape or type.
    """
    mode = "RGB" if channels == 3 else "L"
    if isinstance(image, str | Path):
        with Image.open(image) as opened:
            image = opened.convert(mode)
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert(mode))
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise ValueError(f"a numpy image must be uint8 (H, W, C), got {image.dtype}")
        image = torch.from_numpy(np.array(image))  # a copy: PIL's and callers' arrays stay as is
        image = image[None] if image.ndim == 2 else image.permute(2, 0, 1)
    if not isinstance(image, Tensor):
        raise ValueError(f"cannot read an image from a {type(image).__name__}")
    if image.ndim != 3 or image.shape[0] != channels:
        raise ValueError(f"expected an image shaped ({channels}, H, W), got {tuple(image.shape)}")
    if image.dtype == torch.uint8:
        return image.float().div_(255)
    if not image.is_floating_point():
        raise ValueError(f"a tensor image must be uint8 or float in [0, 1], got {image.dtype}")
    return image.float()


class Predictor:
    """Masks and class probabilities of one trained model for images of any size.

    Args:
        model: the Segmenter, in eval mode, on ``device``.
        inferer: how images run through ``model`` (windows, test-time augmentation).
        mean: per-channel mean the model's training images were normalised with.
        std: their per-channel standard deviation.
        classes: class names, in index order.
        palette: one RGB triple per class, for drawing masks.
        device: where images are run.
        mode: the task mode the model was trained in (`seglab.task_modes`); multiclass when None.
    """

    def __init__(
        self,
        model: nn.Module,
        inferer: Inferer,
        mean: Sequence[float],
        std: Sequence[float],
        classes: Sequence[str],
        palette: Sequence[Sequence[int]],
        device: torch.device,
        mode: TaskMode | None = None,
    ) -> None:
        self.model = model
        self.mode = Multiclass() if mode is None else mode
        self.inferer = inferer
        self.mean = torch.tensor(list(mean))[:, None, None]
        self.std = torch.tensor(list(std))[:, None, None]
        self.classes = list(classes)
        self.palette = [list(rgb) for rgb in palette]
        self.device = device

    def _normalised(self, image: ImageInput) -> Tensor:
        pixels = read_image(image, channels=len(self.mean)).to(self.device)
        return pixels.sub_(self.mean.to(self.device)).div_(self.std.to(self.device))[None]

    def __call__(self, image: ImageInput) -> Tensor:
        """The mask, an int64 tensor on the CPU at the image's own size: ``(H, W)`` class
        indices (binary: 1 foreground, 0 background), or in multilabel mode ``(C, H, W)``,
        1 where the pixel has class ``c``."""
        return self.mode.labels(self.inferer.logits(self._normalised(image)))[0].cpu()

    def probabilities(self, image: ImageInput) -> Tensor:
        """Probabilities, a float ``(C, H, W)`` tensor on the CPU: of each class (softmax),
        or binary and multilabel, each channel's sigmoid (binary: one channel, foreground)."""
        return self.inferer.probabilities(self._normalised(image))[0].cpu()
