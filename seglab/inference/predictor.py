"""A trained checkpoint as a function from an image to its mask: ``seglab.load(ckpt_path)``.

The model is rebuilt from the config the checkpoint carries (``seglab.build``), and
images are read and normalised as the datamodules read them, so predictions match what
``seglab-eval`` scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from torch import Tensor, nn

from seglab.build import build_inferer, trained_model
from seglab.config.trust import trust_names
from seglab.data.metadata import IMAGENET_MEAN, IMAGENET_STD, default_palette
from seglab.engine.checkpoints import CHECKPOINT_KEY, load_checkpoint
from seglab.errors import SeglabError
from seglab.inference.inferer import Inferer
from seglab.inference.onnx_model import file_config, file_model
from seglab.task_modes import Multiclass, TaskMode, task_mode

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


def build_predictor(
    cfg: DictConfig, checkpoint: dict[str, Any], device: str | torch.device = "cpu"
) -> Predictor:
    """The predictor of a checkpoint whose run config (with any overrides) is ``cfg``.

    A data config that runs the model on rescaled images (``data.eval_scale``) rescales every
    image by the same factor here, as validation did.
    """
    device = torch.device(device)
    return predictor_for(cfg, trained_model(cfg, checkpoint).to(device), device)


def predictor_for(cfg: DictConfig, model: nn.Module, device: torch.device) -> Predictor:
    """The predictor running ``model`` (a trained Segmenter, or an ONNX file's
    ``OnnxSegmenter``) on ``device`` with the data and inference settings of ``cfg``."""
    data: Any = cfg.data
    inferer = build_inferer(cfg, model, image_scale=float(data.get("eval_scale", 1.0)))
    classes = list(data.classes)
    return Predictor(
        model,
        inferer,
        mean=data.get("mean", IMAGENET_MEAN),
        std=data.get("std", IMAGENET_STD),
        classes=classes,
        palette=data.get("palette") or default_palette(len(classes)),
        device=device,
        mode=task_mode(cfg),
    )


def load(
    ckpt_path: str | Path,
    device: str | torch.device = "cpu",
    trusted_targets: Sequence[str] = (),
    threshold: float | None = None,
    **inference: Any,
) -> Predictor:
    """The predictor of a seglab checkpoint, or of an ONNX file from ``seglab-export`` (a
    ``.onnx`` path, run in ONNX Runtime with the settings it carries).

    ``trusted_targets`` names the targets beyond seglab's own components that the
    checkpoint's config may build (your own encoder, ``["mypackage.MyEncoder"]``); a config
    naming any other is refused unbuilt. ``threshold`` replaces the checkpoint's (binary and
    multilabel: the probability above which a pixel has a class). ``inference`` overrides the
    checkpoint's ``inference`` options (those of ``conf/inference/default.yaml``), e.g. ``load(path,
    tile=512, tta={"hflip": True})``. Raises ``SeglabError`` naming the file for a missing,
    foreign or untrusted checkpoint, and naming the option for an unknown one.
    """
    onnx = Path(ckpt_path).suffix.lower() == ".onnx"
    if onnx:
        cfg = OmegaConf.create(file_config(ckpt_path, trust_names(trusted_targets)))
    else:
        checkpoint = load_checkpoint(ckpt_path, trust_names(trusted_targets))
        cfg = OmegaConf.create(checkpoint[CHECKPOINT_KEY]["config"])
    node = cfg.inference
    options = [str(key) for key in node if not str(key).startswith("_")]
    unknown = set(inference) - set(options)
    if unknown:
        raise SeglabError(
            f"seglab.load: {', '.join(sorted(unknown))} is not an inference option; use "
            f"{', '.join(options[:-1])} or {options[-1]} (conf/inference/default.yaml)"
        )
    cfg.inference = OmegaConf.merge(node, inference)
    if threshold is not None:
        cfg.threshold = threshold
    if onnx:
        cfg.model_path = str(ckpt_path)
        return predictor_for(cfg, file_model(cfg, device), torch.device(device))
    return build_predictor(cfg, checkpoint, device)
