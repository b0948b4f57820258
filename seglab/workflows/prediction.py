"""The predictor of a checkpoint or an ONNX file: ``seglab.load`` and ``seglab-predict``.

The model is rebuilt from the config the file carries (`seglab.workflows.build`), with the
data and inference settings the run validated with.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import nn

from seglab.config.spec import RunSpec, resolve_spec
from seglab.config.trust import trust_names
from seglab.data.metadata import IMAGENET_MEAN, IMAGENET_STD, default_palette
from seglab.engine.checkpoints import CHECKPOINT_KEY, load_checkpoint
from seglab.errors import SeglabError
from seglab.inference.onnx_model import file_config, file_model
from seglab.inference.predictor import Predictor
from seglab.workflows.build import build_inferer, trained_model


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
