"""Any timm model as an encoder, through ``timm.create_model(name, features_only=True)``."""

import socket
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlparse

import torch

from seglab.extras import require
from seglab.models.encoders.pretrained import (
    PretrainedEncoder,
    load_weights,
    weights_unavailable,
)
from seglab.models.layers import check_option

# Keys of a TimmEncoder's own state dict start with the attribute that holds the timm model.
OWN_PREFIX = "model."


def _read_state_dict(timm: ModuleType, path: str | Path) -> dict[str, torch.Tensor]:
    """A timm or TimmEncoder state dict, saved with ``torch.save`` or as safetensors."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"TimmEncoder: weights_path={str(path)!r} is not a file")
    return timm.models.load_state_dict(str(path), weights_only=True)


def _check_timm_keys(timm: ModuleType, name: str, state: dict, path: str | Path) -> None:
    """timm loads a features-only model leniently (no classifier, so not strictly), which
    would leave the layers a wrong file lacks at random: compare with the full model's keys."""
    with torch.device("meta"):
        reference = timm.create_model(name)
    classifier = reference.pretrained_cfg.get("classifier") or ()
    classifier = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    prefixes = tuple(f"{c}." for c in classifier)
    expected = reference.state_dict().keys()
    missing = sorted(k for k in expected - state.keys() if not k.startswith(prefixes))
    unexpected = sorted(k for k in state.keys() - expected if not k.startswith(prefixes))
    if missing or unexpected:
        raise ValueError(
            f"TimmEncoder: the weights in weights_path={str(path)!r} do not fit {name}; "
            f"missing keys: {', '.join(missing[:5]) or 'none'} ({len(missing)}); unexpected "
            f"keys: {', '.join(unexpected[:5]) or 'none'} ({len(unexpected)}). Pass a state "
            f"dict of {name} or of a TimmEncoder built from it."
        )


def _weights_location(timm: ModuleType, name: str) -> tuple[str | None, str]:
    """The Hugging Face repository of ``name``'s pretrained weights (``None`` when they come
    from a plain URL) and where a user can get them by hand."""
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is not None and cfg.hf_hub_id:
        return cfg.hf_hub_id, (
            f"the Hugging Face repository {cfg.hf_hub_id}; weights already in the Hugging Face "
            "cache load offline with HF_HUB_OFFLINE=1"
        )
    if cfg is not None and cfg.url:
        return None, cfg.url
    return None, f"timm.create_model({name!r}, pretrained=True)"


def _check_hub_reachable(hub_id: str | None) -> None:
    """Fail at once where the Hugging Face client would retry for most of a minute.

    Only a direct connection is probed: in offline mode or behind a proxy the client is left
    to decide. Plain-URL downloads fail fast by themselves.
    """
    from huggingface_hub import constants

    if hub_id is None or constants.HF_HUB_OFFLINE or urllib.request.getproxies():
        return
    endpoint = urlparse(constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    socket.create_connection((endpoint.hostname, port), timeout=3.0).close()


class TimmEncoder(PretrainedEncoder):
    """A timm model's feature pyramid; its ``feature_info`` gives the channels and strides.

    Most convolutional timm models return five features at strides 2 to 32; some (ConvNeXt)
    return four, from stride 4. The timm model is held as ``model``.

    The options of `PretrainedEncoder` go to timm: ``in_channels`` as ``in_chans`` (timm adapts
    the pretrained RGB filters itself), ``weights`` (``"imagenet"`` / ``"DEFAULT"`` only) as
    ``pretrained=True``, from the Hugging Face cache or hub, and ``output_stride``, which models
    without timm's ``output_stride`` option support only at 32. A ``weights_path`` file is a
    timm state dict of ``name`` (``.pth`` or ``.safetensors``, as on the Hugging Face hub) or a
    TimmEncoder's own ``state_dict()``.

    Args:
        name: a timm model name (``timm.list_models()``), optionally with a pretrained tag
            that picks the weights, e.g. ``"convnext_tiny.fb_in22k"``.
        **options: ``in_channels``, ``weights``, ``weights_path`` and ``output_stride``, as
            `PretrainedEncoder` describes them.
    """

    def __init__(self, name: str = "efficientnet_b0", **options: Any) -> None:
        super().__init__(**options)
        timm = require("timm", f"TimmEncoder(name={name!r})")
        if not timm.is_model(name):
            raise ValueError(
                f"TimmEncoder: name={name!r} is not a timm model; list the candidates with "
                f"timm.list_models('*{name.split('.')[0]}*')"
            )
        weights, weights_path = self.weights, self.weights_path
        if weights is not None:
            check_option("TimmEncoder", "weights", weights, ("imagenet", "DEFAULT"))
        kwargs: dict = {"features_only": True, "in_chans": self.in_channels}
        if self.output_stride != 32:
            kwargs["output_stride"] = self.output_stride
        source = f"weights_path={str(weights_path)!r}"
        own_state = None
        if weights_path is not None:
            state = _read_state_dict(timm, weights_path)
            if all(key.startswith(OWN_PREFIX) for key in state):
                own_state = state
                self.model = timm.create_model(name, **kwargs)
            else:
                _check_timm_keys(timm, name, state, weights_path)
                overlay = {"file": str(weights_path)}
                try:
                    self.model = timm.create_model(
                        name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs
                    )
                except RuntimeError as error:  # shapes that timm cannot adapt
                    raise ValueError(
                        f"TimmEncoder: the weights in {source} do not fit {name}: {error}"
                    ) from error
        elif weights is not None:
            hub_id, where = _weights_location(timm, name)
            try:
                _check_hub_reachable(hub_id)
                self.model = timm.create_model(name, pretrained=True, **kwargs)
            except (OSError, RuntimeError) as error:
                raise weights_unavailable("TimmEncoder", name, weights, error, where) from error
        else:
            self.model = timm.create_model(name, **kwargs)
        self.out_channels = list(self.model.feature_info.channels())
        self.strides = list(self.model.feature_info.reduction())
        if own_state is not None:
            load_weights(self, own_state, source)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.model(x))
