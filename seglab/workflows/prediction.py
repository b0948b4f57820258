"""The predictor of a checkpoint or an ONNX file (``seglab.load``), and what
``seglab-predict`` writes with it.

The model is rebuilt from the config the file carries (`seglab.workflows.build`), with the
data and inference settings the run validated with. Every image gets ``<stem>.png``, a palette
PNG of class indices coloured like the dataset (``mode`` binary: 255 on foreground, 0
elsewhere; multilabel: one such mask per class, ``<class>/<stem>.png``), and on request
``<stem>_overlay.jpg`` and ``<stem>_probs.npy``; with ``pseudo_labels=true`` the mask is the
dataset's own mask file, void below ``confidence`` (`seglab.inference.pseudo_labels`).
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from PIL import Image, UnidentifiedImageError
from torch import nn
from tqdm import tqdm

from seglab.config.spec import RunSpec, resolve_spec
from seglab.config.trust import trust_names
from seglab.data.layout import IMAGE_EXTENSIONS
from seglab.data.metadata import IMAGENET_MEAN, IMAGENET_STD, default_palette
from seglab.engine.checkpoints import CHECKPOINT_KEY, load_checkpoint
from seglab.errors import SeglabError
from seglab.inference.onnx_model import file_config, file_model
from seglab.inference.predictor import Predictor, read_image
from seglab.inference.pseudo_labels import PseudoLabeler, check_confidence
from seglab.runs.directories import RUN_MARKERS
from seglab.workflows.build import build_inferer, trained_model
from seglab.workflows.mounting import command_checkpoint


def build_predictor(
    spec: RunSpec, checkpoint: dict[str, Any], device: str | torch.device = "cpu"
) -> Predictor:
    """The predictor of a checkpoint whose run config (with any overrides) is ``spec``'s.

    A data config that runs the model on rescaled images (``data.eval_scale``) rescales every
    image by the same factor here, as validation did.
    """
    device = torch.device(device)
    return predictor_for(spec, trained_model(spec, checkpoint).to(device), device)


def predictor_for(spec: RunSpec, model: nn.Module, device: torch.device) -> Predictor:
    """The predictor running ``model`` (a trained Segmenter, or an ONNX file's
    ``OnnxSegmenter``) on ``device`` with the data and inference settings of ``spec``."""
    data: Any = spec.config.data
    inferer = build_inferer(spec, model, image_scale=float(data.get("eval_scale", 1.0)))
    classes = list(data.classes)
    return Predictor(
        model,
        inferer,
        mean=data.get("mean", IMAGENET_MEAN),
        std=data.get("std", IMAGENET_STD),
        classes=classes,
        palette=data.get("palette") or default_palette(len(classes)),
        device=device,
        mode=spec.mode,
        max_value=data.get("max_value"),
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
        spec = resolve_spec(cfg)
        return predictor_for(spec, file_model(spec, device), torch.device(device))
    return build_predictor(resolve_spec(cfg), checkpoint, device)


def input_images(pattern: str) -> list[Path]:
    """The image files ``input`` names: one file, a folder's image files, or a glob's matches."""
    path = Path(pattern)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise SeglabError(
                f"input={pattern} holds no image files ({', '.join(IMAGE_EXTENSIONS)})"
            )
        return files
    matches = sorted(Path(p) for p in glob.glob(pattern) if Path(p).is_file())
    if not matches:
        raise SeglabError(f"input={pattern} is no file, folder or glob matching any file")
    return matches


def palette_image(mask: torch.Tensor, palette: Sequence[Sequence[int]]) -> Image.Image:
    """A mode "P" PNG whose pixel values are the class indices and whose colours the palette's."""
    image = Image.fromarray(mask.to(torch.uint8).numpy())  # mode "L"; a palette makes it "P"
    image.putpalette([value for rgb in palette for value in rgb])
    return image


def mask_images(
    mask: torch.Tensor, predictor: Predictor, stem: str
) -> list[tuple[Path, Image.Image]]:
    """The mask files of one image (relative paths): a palette PNG of class indices, a 0/255
    PNG of a sigmoid mode's labels, and one of those per class for labels with a class axis."""
    value = predictor.mode.mask_value
    if value is None:
        return [(Path(f"{stem}.png"), palette_image(mask, predictor.palette))]
    if not predictor.mode.class_axis:
        return [(Path(f"{stem}.png"), Image.fromarray((mask * value).to(torch.uint8).numpy()))]
    return [
        (Path(name) / f"{stem}.png", Image.fromarray((channel * value).to(torch.uint8).numpy()))
        for name, channel in zip(predictor.classes, mask, strict=True)
    ]


def overlay_image(pixels: torch.Tensor, mask: Image.Image, alpha: float) -> Image.Image:
    """The ``(C, H, W)`` image as read (in [0, 1]) with its mask's colours blended in at
    opacity ``alpha``; its first three bands are drawn as RGB, one or two bands the first in
    grey, as the validation grid draws them."""
    rgb = pixels[:3] if pixels.shape[0] >= 3 else pixels[:1].expand(3, -1, -1)
    array = rgb.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.blend(Image.fromarray(array), mask.convert("RGB"), alpha)


def predict_file(
    predictor: Predictor,
    path: Path,
    output: Path,
    cfg: DictConfig,
    labeler: PseudoLabeler | None = None,
) -> None:
    """Write the outputs of one image (its pseudo-label mask with a ``labeler``);
    ``OSError``/``ValueError`` if it cannot be read."""
    pixels = read_image(path, len(predictor.mean), predictor.max_value)
    if cfg.save_probs or labeler is not None:
        probabilities = predictor.probabilities(pixels)
        if cfg.save_probs:
            np.save(output / f"{path.stem}_probs.npy", probabilities.half().numpy())
        if labeler is None:
            mask = predictor.mode.labels_of_probabilities(probabilities, dim=0)
        else:
            stored, mask = labeler.mask(probabilities)
            labeler.save(stored, output / labeler.file_name(path.stem))
        del probabilities
    else:
        mask = predictor(pixels)
    if not cfg.overlay:
        del pixels  # the overlay draws the image as read; else it need not stay in memory
    if labeler is None:
        for name, image in mask_images(mask, predictor, path.stem):
            (output / name).parent.mkdir(parents=True, exist_ok=True)
            image.save(output / name)
    if cfg.overlay:
        coloured = palette_image(mask, predictor.palette)
        overlay = overlay_image(pixels, coloured, cfg.overlay_alpha)
        overlay.save(output / f"{path.stem}_overlay.jpg")


def predict(cfg: DictConfig) -> list[tuple[Path, str]]:
    """Predict every input image; returns the files that could not be read, with why."""
    confidence = check_confidence(cfg.pseudo_labels, cfg.confidence)
    spec = resolve_spec(cfg)
    labeler = PseudoLabeler(spec.mode, cfg.data, confidence) if cfg.pseudo_labels else None
    device = cfg.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    files = input_images(str(cfg.input))
    output = Path(cfg.output)
    # masks may be written again into an earlier prediction's folder, never into a run
    if output.is_dir() and any(any(output.glob(marker)) for marker in RUN_MARKERS):
        raise SeglabError(
            f"output={cfg.output} is a run's directory (it holds checkpoints, events or .hydra); "
            "give a folder of its own"
        )
    if labeler is not None and output.resolve() in {path.parent.resolve() for path in files}:
        raise SeglabError(
            f"output={cfg.output} holds input images, which pseudo-label masks could overwrite; "
            "write them to a folder of their own"
        )
    if cfg.get("model_path") is not None:
        predictor = predictor_for(spec, file_model(spec, device), torch.device(device))
    else:
        predictor = build_predictor(spec, command_checkpoint(cfg), device)
    if cfg.overlay and predictor.mode.class_axis:
        raise SeglabError(
            f"overlay=true blends one mask's class colours into the image, but mode="
            f"{predictor.mode.name} writes a mask per class: leave overlay=false"
        )
    output.mkdir(parents=True, exist_ok=True)
    failed = []
    for path in tqdm(files, desc="seglab-predict", unit="image"):
        try:
            predict_file(predictor, path, output, cfg, labeler)
        except (OSError, UnidentifiedImageError, ValueError) as error:
            failed.append((path, f"{type(error).__name__}: {error}"))
    if labeler is not None:
        print(labeler.summary())
    return failed
