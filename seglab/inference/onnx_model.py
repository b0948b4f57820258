"""ONNX files as seglab writes and reads them: the metadata that makes one usable like a
checkpoint, and a Segmenter-like module that runs one in ONNX Runtime.

Every ONNX file ``seglab-export`` writes, float or INT8, carries in its ``metadata_props`` what
a checkpoint carries beside its weights: the run's resolved config (YAML) and, readable without
seglab, the class names, palette, normalisation, input channels, void value and task mode. A
file's config is held to the same trust rules as a checkpoint's before anything is built from
it (seglab/config/trust.py), since ``seglab-eval model_path=...`` rebuilds the data from it.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import Tensor, nn

from seglab.config.spec import RunSpec
from seglab.config.trust import refuse_untrusted
from seglab.config.upgrade import upgrade_config
from seglab.data.metadata import IMAGENET_MEAN, IMAGENET_STD, default_palette
from seglab.errors import SeglabError
from seglab.extras import require

#: Prefix of every metadata key seglab writes; the run's config is under ``seglab.config``.
PREFIX = "seglab."
CONFIG_KEY = PREFIX + "config"
#: The export's input and output names (seglab/workflows/export.py writes them).
INPUT_NAME, OUTPUT_NAME = "image", "logits"


def require_onnxruntime(why: str) -> Any:
    """The ``onnxruntime`` module, once ``onnx`` (which reads and writes the files' metadata)
    is importable too; else a MissingExtraError saying what to install for ``why``."""
    require("onnx", why)
    return require("onnxruntime", why)


def metadata(run: dict[str, Any]) -> dict[str, str]:
    """The ``metadata_props`` of a file exported from a run whose resolved config (with the
    export's overrides) is ``run``: the config as YAML, and the data settings a user of the
    file needs without seglab as JSON values."""
    data = run["data"]
    classes = [str(name) for name in data["classes"]]
    return {
        PREFIX + "classes": json.dumps(classes),
        PREFIX + "palette": json.dumps(data.get("palette") or default_palette(len(classes))),
        PREFIX + "mean": json.dumps(list(data.get("mean", IMAGENET_MEAN))),
        PREFIX + "std": json.dumps(list(data.get("std", IMAGENET_STD))),
        PREFIX + "in_channels": json.dumps(int(data.get("in_channels", 3))),
        PREFIX + "ignore_index": json.dumps(int(data["ignore_index"])),
        PREFIX + "mode": str(run.get("mode") or "multiclass"),
        CONFIG_KEY: OmegaConf.to_yaml(OmegaConf.create(run)),
    }


def write_metadata(path: Path, properties: dict[str, str]) -> None:
    """Store ``properties`` in the ``metadata_props`` of the ONNX file at ``path``, in place,
    replacing any seglab keys it held."""
    import onnx

    model = onnx.load(str(path))
    kept = [p for p in model.metadata_props if not p.key.startswith(PREFIX)]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in properties.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def read_metadata(path: str | Path, key: str = "model_path") -> dict[str, str]:
    """The seglab ``metadata_props`` of the ONNX file at ``path`` (empty for a file seglab did
    not write); a SeglabError naming ``key`` for a missing file or one that is not ONNX."""
    path = Path(path)
    if not path.is_file():
        raise SeglabError(f"{key}={path} does not exist")
    require_onnxruntime(f"{key}={path}")
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:
        first_line = (str(error).strip().splitlines() or [""])[0]
        raise SeglabError(
            f"{key}={path} is not an ONNX file ({type(error).__name__}: {first_line}); give a "
            "file written by seglab-export format=onnx"
        ) from None
    if not model.graph.node:
        raise SeglabError(f"{key}={path} is not an ONNX model (it has no graph)")
    return {p.key: p.value for p in model.metadata_props if p.key.startswith(PREFIX)}


def stored_config(
    path: str | Path, trusted: Collection[str] = (), key: str = "model_path"
) -> dict[str, Any] | None:
    """The run config an ONNX file carries, None for a file without seglab metadata; refused
    with a SeglabError if it names a ``_target_`` outside seglab's own and ``trusted``."""
    properties = read_metadata(path, key)
    if CONFIG_KEY not in properties:
        return None
    config = OmegaConf.to_container(OmegaConf.create(properties[CONFIG_KEY]))
    if not isinstance(config, dict):
        raise SeglabError(f"{key}={path}: its {CONFIG_KEY} metadata is not a config")
    upgrade_config(config)
    refuse_untrusted(config, trusted, f"{key}={path}")
    return config


def file_config(path: str | Path, trusted: Collection[str] = ()) -> dict[str, Any]:
    """`stored_config`, refusing a file without one: nothing says what data it was made for."""
    config = stored_config(path, trusted, key="path")
    if config is None:
        raise SeglabError(
            f"path={path} carries no seglab metadata (seglab-export writes it), so nothing says "
            "which classes and normalisation its network was trained with"
        )
    return config


class OnnxSegmenter(nn.Module):
    """An ONNX file's network in ONNX Runtime, called like a Segmenter: ``(N, C_in, H, W)``
    float images to ``(N, C, H, W)`` logits on the images' device.

    It has no parameters: the file's weights live in the session. Everything that runs a
    Segmenter (the Inferer's windows and test-time augmentation, the task's evaluation steps)
    runs it unchanged.

    Args:
        path: the ONNX file, with input ``image`` and output ``logits``.
        device: ``cuda`` runs on ONNX Runtime's CUDA provider where the installed onnxruntime
            has one; everything else on the CPU.
    """

    def __init__(self, path: str | Path, device: str | torch.device = "cpu") -> None:
        super().__init__()
        onnxruntime = require_onnxruntime(f"model_path={path}")
        providers = ["CPUExecutionProvider"]
        if torch.device(device).type == "cuda" and (
            "CUDAExecutionProvider" in onnxruntime.get_available_providers()
        ):
            providers.insert(0, "CUDAExecutionProvider")
        self.path = Path(path)
        self.session = onnxruntime.InferenceSession(str(path), providers=providers)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if [i.name for i in inputs] != [INPUT_NAME] or OUTPUT_NAME not in [o.name for o in outputs]:
            raise SeglabError(
                f"model_path={path} takes {[i.name for i in inputs]} and returns "
                f"{[o.name for o in outputs]}; seglab runs files with input '{INPUT_NAME}' "
                f"and output '{OUTPUT_NAME}' (seglab-export writes them so)"
            )
        (output,) = [o for o in outputs if o.name == OUTPUT_NAME]
        channels, classes = inputs[0].shape[1], output.shape[1]
        #: input channels and class count as the file fixes them (None where symbolic)
        self.in_channels = channels if isinstance(channels, int) else None
        self.num_classes = classes if isinstance(classes, int) else None

    def check_data(self, channels: int, in_channels: int) -> None:
        """Refuse data whose logit channel count (classes, as the task mode counts them) or
        image channels differ from the file's network."""
        if self.num_classes is not None and self.num_classes != channels:
            raise SeglabError(
                f"model_path={self.path} returns {self.num_classes} logit channels but the "
                f"data and mode need {channels} (data.num_classes, mode): the file cannot "
                "score this dataset"
            )
        if self.in_channels is not None and self.in_channels != in_channels:
            raise SeglabError(
                f"model_path={self.path} takes {self.in_channels}-channel images but "
                f"data.in_channels={in_channels}"
            )

    def forward(self, images: Tensor) -> Tensor:
        pixels = np.ascontiguousarray(images.detach().float().cpu().numpy())
        (logits,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: pixels})
        return torch.from_numpy(logits).to(images.device)


def file_model(spec: RunSpec, device: str | torch.device = "cpu") -> OnnxSegmenter:
    """The network of ``model_path`` in ONNX Runtime, checked against the data and the task
    mode."""
    cfg = spec.config
    model = OnnxSegmenter(cfg.model_path, device)
    channels = spec.mode.channels(int(cfg.data.num_classes))
    model.check_data(channels, int(cfg.data.get("in_channels", 3)))
    return model.eval()
