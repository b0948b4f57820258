"""Reading an image file as the model sees it: 8-bit photos, 16-bit and float images, and
multi-band TIFFs with any number of channels.

8-bit images read with ``data.in_channels`` 1 or 3 take the path they always took: Pillow
converts them (grayscale replicated, palette applied, alpha dropped) and they stay uint8 until
the transforms scale them by 1/255, with no extra copy. Every other image keeps its own bands,
which must number ``data.in_channels`` (one band is replicated for 3, as for 8-bit grayscale),
and becomes float32 here. Integer images are divided
by ``data.max_value`` (None: their type's largest value, 255 for 8 bits and 65535 for 16, so
no value is clipped); float images are used as they are. TIFFs of more than 8 bits or of other
band counts than 1 or 3 are read by tifffile (``pip install 'seglab[tiff]'``), since Pillow
reads them as 8-bit RGBA.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from seglab.data.metadata import DatasetError
from seglab.extras import require

#: Pillow modes of 8 bits per band, which ``in_channels`` 1 and 3 convert to "L" and "RGB".
EIGHT_BIT_MODES = frozenset({"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX"})
#: Pillow modes of one band of more than 8 bits, read as they are.
WIDE_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})
TIFF_SUFFIXES = (".tif", ".tiff")
# the TIFF tag that gives the bits of each band
BITS_PER_SAMPLE = 258


def _tiff_bands(path: Path) -> np.ndarray:
    """A TIFF's first image as a ``(bands, H, W)`` array, whichever axis holds the bands."""
    tifffile = require("tifffile", f"{path}: a TIFF of more than 8 bits or of 2 or 4+ bands")
    with tifffile.TiffFile(path) as tiff:
        series = tiff.series[0]
        array, axes = series.asarray(), series.axes
    if array.ndim == 2:
        return array[None]
    band_axes = [index for index, axis in enumerate(axes) if axis not in "YX"]
    if array.ndim != 3 or len(band_axes) != 1:
        raise DatasetError(
            f"{path}: a TIFF of axes {axes} {array.shape}; seglab reads one image of "
            "height, width and bands: save each image as a file of its own"
        )
    return np.moveaxis(array, band_axes[0], 0)


def _eight_bit(image: Image.Image) -> bool:
    if image.mode not in EIGHT_BIT_MODES:
        return False
    if image.format == "TIFF":
        bits = image.tag_v2.get(BITS_PER_SAMPLE, 8)
        return max(bits if isinstance(bits, tuple) else (bits,)) <= 8
    # a 16-bit colour PNG opens as 8-bit RGB(A), its low bytes dropped
    return not any(str(tile.args).endswith(";16B") for tile in image.tile)


@dataclass(frozen=True)
class ImageReader:
    """Reads image files as ``(in_channels, H, W)`` tensors (see the module's docstring).

    Attributes:
        in_channels: ``data.in_channels``: 1 and 3 convert 8-bit images to grayscale or RGB;
            images of more bits, and every image for other counts, must have that many bands.
        max_value: ``data.max_value``: what integer images are divided by, e.g. 4095 for
            12-bit sensors; None: their type's largest value (255, 65535). Float images are
            never scaled.
    """

    in_channels: int = 3
    max_value: float | None = None

    def __post_init__(self) -> None:
        if self.max_value is not None and not float(self.max_value) > 0:
            raise ValueError(
                f"data.max_value={self.max_value} must be positive, e.g. 65535 for 16-bit or "
                "4095 for 12-bit images, or null for the largest value of their type"
            )

    @property
    def converts(self) -> bool:
        """Whether 8-bit images are converted by Pillow (1 or 3 channels)."""
        return self.in_channels in (1, 3)

    def __call__(self, path: str | Path) -> Tensor:
        """The image: uint8 on the 8-bit path (the transforms scale it), else float32 scaled.

        Raises:
            DatasetError: naming the file, for a band count other than ``in_channels``.
            OSError, ValueError: for a file that cannot be decoded.
        """
        path = Path(path)
        array = self._bands(path)
        return array if isinstance(array, Tensor) else self._scaled(array, path)

    def size(self, path: str | Path) -> tuple[int, int]:
        """``(width, height)``, decoding the image in full (so that truncation is found) and
        checking its bands as `__call__` does."""
        path = Path(path)
        if path.suffix.lower() not in TIFF_SUFFIXES or self.converts:
            with Image.open(path) as image:
                if self.converts and _eight_bit(image):
                    image.load()
                    return image.size
        height, width = self(path).shape[-2:]
        return width, height

    def _bands(self, path: Path) -> Tensor | np.ndarray:
        """The 8-bit path's uint8 tensor, or the ``(bands, H, W)`` array of any other image."""
        if path.suffix.lower() in TIFF_SUFFIXES and not self.converts:
            return _tiff_bands(path)
        with Image.open(path) as image:
            if _eight_bit(image):
                if self.converts:
                    mode = "RGB" if self.in_channels == 3 else "L"
                    pixels = TF.pil_to_tensor(image.convert(mode))
                    return pixels if self.max_value is None else pixels.float() / self.max_value
                array = np.asarray(image)
            elif image.format == "TIFF":
                return _tiff_bands(path)
            elif image.mode in WIDE_MODES:
                array = np.asarray(image)
            else:
                raise DatasetError(
                    f"{path}: a {image.format} image of Pillow mode {image.mode}, which seglab "
                    "does not read: save it as a TIFF, or a PNG of 8 or 16 bits"
                )
        return array[None] if array.ndim == 2 else np.moveaxis(array, -1, 0)

    def _scaled(self, bands: np.ndarray, path: Path) -> Tensor:
        if bands.shape[0] == 1 and self.in_channels == 3:
            # as 8-bit grayscale images are converted to RGB
            bands = np.repeat(bands, 3, axis=0)
        if bands.shape[0] != self.in_channels:
            raise DatasetError(
                f"{path}: the image has {bands.shape[0]} band(s) but data.in_channels="
                f"{self.in_channels}; set data.in_channels={bands.shape[0]} (with as many "
                "data.mean and data.std values, from seglab-data stats) or convert the file"
            )
        if np.issubdtype(bands.dtype, np.floating) or bands.dtype == np.bool_:
            return torch.from_numpy(bands.astype(np.float32))
        scale = integer_scale(bands.dtype, self.max_value)
        return torch.from_numpy(bands.astype(np.float32)).div_(scale)


def integer_scale(dtype: np.dtype, max_value: float | None) -> float:
    """What an integer image is divided by: ``max_value``, else its type's largest value,
    where 32-bit integers count as 16-bit (Pillow opens some 16-bit PNGs as mode "I")."""
    if max_value is not None:
        return float(max_value)
    return 65535.0 if dtype == np.int32 else float(np.iinfo(dtype).max)
