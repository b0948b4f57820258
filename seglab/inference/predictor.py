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

from seglab.data.images import ImageReader, integer_scale
from seglab.inference.inferer import Inferer
from seglab.task_modes import Multiclass, TaskMode

#: What a predictor accepts as an image.
ImageInput = str | Path | Image.Image | np.ndarray | Tensor


def read_image(image: ImageInput, channels: int = 3, max_value: float | None = None) -> Tensor:
    """A float ``(channels, H, W)`` image scaled as the datamodules scale it, from a path, PIL
    image, ``(H, W[, C])`` array or ``(C, H, W)`` tensor.

    Files are read by the datamodules' reader (`seglab.data.images.ImageReader`): 8-bit
    images converted to RGB or grayscale for 1 or 3 channels, others with their own bands.
    PIL images are converted so too. Integer arrays and tensors (uint8, uint16, ...) are
    divided by ``max_value`` (``data.max_value``; None: their type's largest value); float
    ones are taken as they are. Raises ``OSError`` for a file that cannot be read and
    ``ValueError`` for an array of another shape or type.
    """
    reader = ImageReader(channels, max_value)
    if isinstance(image, str | Path):
        image = reader(image)
    if isinstance(image, Image.Image):
        if reader.converts:
            image = image.convert("RGB" if channels == 3 else "L")
        image = np.asarray(image)
    if isinstance(image, np.ndarray):
        bands = np.moveaxis(image[..., None] if image.ndim == 2 else image, -1, 0)
        if np.issubdtype(bands.dtype, np.integer):
            scale = integer_scale(bands.dtype, max_value)
        elif np.issubdtype(bands.dtype, np.floating):
            scale = 1.0
        else:
            raise ValueError(f"a numpy image must be (H, W[, C]) of numbers, got {image.dtype}")
        # a float32 copy: PIL's and callers' arrays stay as they are
        image = torch.from_numpy(bands.astype(np.float32)).div_(scale)
    if not isinstance(image, Tensor):
        raise ValueError(f"cannot read an image from a {type(image).__name__}")
    if image.ndim != 3 or image.shape[0] != channels:
        raise ValueError(f"expected an image shaped ({channels}, H, W), got {tuple(image.shape)}")
    if image.is_floating_point():
        return image.float()
    if image.dtype == torch.bool or image.is_complex():
        raise ValueError(f"a tensor image must be of integers or floats, got {image.dtype}")
    # the reader's scale for the same integer type (a tensor may live on a GPU)
    scale = integer_scale(torch.empty(0, dtype=image.dtype).numpy().dtype, max_value)
    return image.float().div_(scale)


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
        max_value: what integer images are divided by (``data.max_value``, `read_image`).
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
        max_value: float | None = None,
    ) -> None:
        self.model = model
        self.mode = Multiclass() if mode is None else mode
        self.inferer = inferer
        self.mean = torch.tensor(list(mean))[:, None, None]
        self.std = torch.tensor(list(std))[:, None, None]
        self.classes = list(classes)
        self.palette = [list(rgb) for rgb in palette]
        self.device = device
        self.max_value = max_value

    def _normalised(self, image: ImageInput) -> Tensor:
        pixels = read_image(image, len(self.mean), self.max_value).to(self.device)
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
