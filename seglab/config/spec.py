"""The run spec: what a composed config means, read once per command.

A command composes its config (Hydra), upgrades what an earlier seglab saved
(`seglab.config.upgrade`) and, for a resume or a checkpoint, mounts the stored run; then
`resolve_spec` reads the facts that several builders need (the task mode, the method's fit
with it, the non-finite guard, the boundary metric, the performance options apart from the
Trainer's own arguments) and refuses a bad value before anything is built. The builders of
`seglab.workflows.build` take the spec, so no other module reads these keys again.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf, open_dict

from seglab.config.keys import PERFORMANCE_KEYS
from seglab.errors import SeglabError
from seglab.task_modes import TaskMode, task_mode

#: The values of ``on_nonfinite``.
NONFINITE_ACTIONS = ("stop", "skip")
#: The value of a loss's ``class_weights`` that asks for weights computed from the train split.
MEDIAN_FREQUENCY = "median_frequency"
#: The method of a config that names none (``seglab-data``'s, one saved before methods).
DEFAULT_METHOD = "seglab.methods.Supervised"
_MATMUL_PRECISIONS = ("highest", "high", "medium")
_BOUNDARY_KEYS = ("enabled", "dilation_ratio", "hd95")


@dataclass(frozen=True)
class BoundaryOptions:
    """``metrics.boundary`` of a run that computes Boundary IoU (and HD95 on request)."""

    dilation_ratio: float
    hd95: bool


@dataclass(frozen=True)
class Performance:
    """The options of ``cfg.trainer`` that seglab applies rather than Lightning (the trainer
    config of an accelerator carries them beside ``precision``).

    Attributes:
        channels_last: the model and batches in NHWC memory format.
        float32_matmul_precision: torch's setting for float32 matmuls; None leaves it.
        compile: ``torch.compile`` keyword arguments for training; None: not compiled.
    """

    channels_last: bool = False
    float32_matmul_precision: str | None = None
    compile: dict[str, Any] | None = None


@dataclass(frozen=True)
class RunSpec:
    """A resolved run config.

    Attributes:
        config: the whole config, upgraded and mounted; its losses' ``median_frequency`` class
            weights become numbers in `with_class_weights`, so that what ``config_resolved.yaml``
            records is what the checkpoint holds.
        mode: the task mode, checked against the data's class count.
        method: the training method's ``_target_``, checked to fit ``mode``.
        nonfinite: what a NaN or infinite training loss does, one of `NONFINITE_ACTIONS`.
        boundary: the boundary metric's options; None when it is off or the task multilabel.
        performance: seglab's own performance options of ``cfg.trainer``.
        trainer: ``cfg.trainer`` without them, the keyword arguments of ``pl.Trainer``; None
            for a command that trains nothing (its config has no trainer).
    """

    config: DictConfig
    mode: TaskMode
    method: str
    nonfinite: str
    boundary: BoundaryOptions | None
    performance: Performance
    trainer: DictConfig | None

    @property
    def pending_class_weights(self) -> list[str]:
        """The keys of the loss whose class weights are still ``median_frequency``."""
        return _median_frequency_keys(self.config.get("loss"), "loss")

    def with_class_weights(self, weights: list[float]) -> RunSpec:
        """The spec with ``weights`` in place of every ``median_frequency`` of the loss."""
        keys = self.pending_class_weights
        if not keys:
            return self
        config = copy.deepcopy(self.config)
        for key in keys:
            OmegaConf.update(config, key, list(weights), merge=False)
        return replace(self, config=config)


def resolve_spec(cfg: DictConfig) -> RunSpec:
    """The spec of a composed (and upgraded, mounted) config; SeglabError naming the key and
    the fix for a value no builder could use."""
    mode = task_mode(cfg)
    method = str((cfg.get("method") or {}).get("_target_", DEFAULT_METHOD))
    _check_method(method, mode)
    nonfinite = str(cfg.get("on_nonfinite", "stop"))
    if nonfinite not in NONFINITE_ACTIONS:
        raise SeglabError(
            f"on_nonfinite={nonfinite} must be one of: {', '.join(NONFINITE_ACTIONS)}"
        )
    trainer = cfg.get("trainer")
    return RunSpec(
        config=cfg,
        mode=mode,
        method=method,
        nonfinite=nonfinite,
        boundary=_boundary(OmegaConf.select(cfg, "metrics.boundary"), mode),
        performance=_performance(trainer) if trainer is not None else Performance(),
        trainer=_lightning_arguments(trainer) if trainer is not None else None,
    )


def _check_method(method: str, mode: TaskMode) -> None:
    try:
        modes = tuple(get_class(method).modes)
    except (ImportError, ValueError, AttributeError):
        return  # not a seglab method: instantiating it names what is wrong
    if mode.name not in modes:
        raise SeglabError(
            f"method._target_={method} fits mode={'|'.join(modes)} only, not mode={mode.name}; "
            "use method=supervised"
        )


def _boundary(node: DictConfig | None, mode: TaskMode) -> BoundaryOptions | None:
    if node is None:
        return None
    unknown = sorted(set(node) - set(_BOUNDARY_KEYS))
    if unknown:
        raise SeglabError(
            f"metrics.boundary.{unknown[0]} is not an option; the options are: "
            + ", ".join(_BOUNDARY_KEYS)
        )
    if not isinstance(node.enabled, bool):
        raise SeglabError(f"metrics.boundary.enabled={node.enabled} must be true or false")
    # multilabel labels are (N, C, H, W) yes/no maps, not one class map: no boundary metric yet
    if not node.enabled or mode.class_axis:
        return None
    # the metric checks the values, naming the key (`seglab.metrics.boundary`)
    return BoundaryOptions(node.dilation_ratio, node.hd95)


def _performance(trainer: DictConfig) -> Performance:
    matmul = trainer.get("float32_matmul_precision")
    if matmul is not None and matmul not in _MATMUL_PRECISIONS:
        raise SeglabError(
            f"trainer.float32_matmul_precision={matmul} is not one of: "
            f"{', '.join(_MATMUL_PRECISIONS)} (or null to leave torch's setting)"
        )
    options = trainer.get("compile")
    if options and options is not True and not isinstance(options, DictConfig | dict):
        raise SeglabError(
            f"trainer.compile={options} must be false, true, or a dict of torch.compile "
            "options such as {mode: max-autotune}"
        )
    compile_options = None
    if options:
        compile_options = (
            {} if options is True else dict(OmegaConf.to_container(OmegaConf.create(options)))
        )
    return Performance(bool(trainer.get("channels_last")), matmul, compile_options)


def _lightning_arguments(trainer: DictConfig) -> DictConfig:
    node = copy.deepcopy(trainer)
    with open_dict(node):
        for key in PERFORMANCE_KEYS:
            node.pop(key, None)
    return node


def _median_frequency_keys(node: Any, path: str) -> list[str]:
    if not isinstance(node, DictConfig):
        return []
    keys = []
    for key in node:
        value = node.get(key)
        if isinstance(value, DictConfig):
            keys += _median_frequency_keys(value, f"{path}.{key}")
        elif key == "class_weights" and value == MEDIAN_FREQUENCY:
            keys.append(f"{path}.{key}")
    return keys
