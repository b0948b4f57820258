"""Where seglab's configs live, and how a checkpoint's stored config becomes the config that
``seglab-eval``, ``seglab-predict`` and ``seglab-export`` compose their command line onto.

A checkpoint carries the resolved config of its run. Mounted under the command's own config
(``conf/eval.yaml`` and the others name ``checkpoint_run`` in their defaults), it is what
Hydra checks and applies the command line against, so every key of the run is overridable
with ``key=value``, exactly as in the run that saved it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from seglab.config.keys import INVOCATION_KEYS
from seglab.config.location import config_dir
from seglab.config.trust import trust_names
from seglab.errors import SeglabError, reported

#: The name under which the checkpoint's config is offered to Hydra (see the module docstring).
CHECKPOINT_RUN = "checkpoint_run"
#: The groups of conf/train.yaml that a stored config holds as whole nodes.
_RUN_GROUPS = (
    "data",
    "model",
    "loss",
    "optimizer",
    "scheduler",
    "trainer",
    "logger",
    "callbacks",
    "inference",
    "metrics",
    "method",
    "experiment",
)
#: The checkpoint `mount_checkpoint` read, keyed by `_file_identity`: the command reuses it.
_mounted: dict[tuple[Any, ...], dict[str, Any]] = {}
#: Command-line values that leave a path key unset.
_UNSET = (None, "", "???", "null")


def compose_config(config_name: str, overrides: list[str]) -> DictConfig:
    """``conf/<config_name>.yaml`` with ``overrides``, composed as the commands compose it
    (without the ``hydra`` node): the one way a script or library caller gets a run's config
    without running a command."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name, overrides=overrides)


def command_line_value(args: list[str], key: str) -> str | None:
    """The value ``key=<value>`` takes on a Hydra command line (the last one wins), else None."""
    value = None
    for arg in args:
        name, equals, rest = arg.partition("=")
        if equals and name.lstrip("+") == key:
            value = rest
    return value


def command_line_trust(args: list[str]) -> list[str]:
    """The targets ``trusted_targets=[a.B,c.D]`` on the command line ``args`` trusts."""
    value = command_line_value(args, "trusted_targets")
    if value is None:
        return []
    try:
        parsed = OverridesParser.create().parse_override(f"trusted_targets={value}").value()
    except Exception:
        raise SeglabError(
            f"trusted_targets={value} is not a list of targets; write "
            "trusted_targets=[mypackage.MyEncoder,mypackage.MyLoss]"
        ) from None
    return trust_names(parsed)


def refuse_group_overrides(args: list[str]) -> None:
    """A group override (``data=camvid``) would replace the checkpoint's node with the group's
    defaults, silently changing how the run is scored: refuse it, naming the keys to use."""
    overrides = [arg for arg in args if "=" in arg and not arg.startswith("-")]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:  # Hydra reports a malformed override itself, with its own message
        return
    for override in parsed:
        group = override.key_or_group
        if override.is_delete() or group.split("/")[0] not in _RUN_GROUPS:
            continue
        if "/" in group or group in _RUN_GROUPS:
            key = group.replace("/", ".")
            raise SeglabError(
                f"{override.input_line}: the checkpoint's {key} settings are used as they were "
                f"trained; change single keys instead (e.g. {key}.<key>=<value>), since a group "
                "override would replace all of them with the group's defaults"
            )


def mount_checkpoint(args: list[str]) -> None:
    """Offer the config of the checkpoint that ``ckpt_path=`` on the command line ``args``
    names (or of the ONNX file ``model_path=`` names) to Hydra as ``checkpoint_run`` (an empty
    one without either, so that the command itself reports the missing key), after refusing
    group overrides."""
    path = command_line_value(args, "ckpt_path")
    model_path = command_line_value(args, "model_path")
    if model_path not in _UNSET:
        if path not in _UNSET:
            raise SeglabError(
                f"ckpt_path={path} and model_path={model_path}: give one, the checkpoint or "
                "the ONNX file to run"
            )
        mount_checkpoint_config(_model_file_config(args, model_path))
        return
    refuse_group_overrides(args)
    config = None
    if path not in _UNSET:
        # imported here: `seglab.runs.reproduce` reads config_dir, not the model stack
        from seglab.engine.checkpoints import CHECKPOINT_KEY, load_checkpoint

        trusted = command_line_trust(args)
        checkpoint = load_checkpoint(path, trusted=trusted)
        _mounted.clear()
        _mounted[_file_identity(path, trusted)] = checkpoint
        config = checkpoint[CHECKPOINT_KEY]["config"]
    mount_checkpoint_config(config)


def _model_file_config(args: list[str], path: str) -> dict[str, Any]:
    """The run config an ONNX file carries (checked like a checkpoint's), or for a file
    without one the training defaults with the data config ``data=<option>`` names."""
    from seglab.inference.onnx_model import stored_config

    config = stored_config(path, command_line_trust(args))
    if config is not None:
        refuse_group_overrides(args)
        return config
    option = command_line_value(args, "data")
    if option in _UNSET:
        raise SeglabError(
            f"model_path={path} carries no seglab metadata (seglab-export writes it): name "
            "the data to run it on, e.g. data=camvid"
        )
    return OmegaConf.to_container(compose_config("train", [f"data={option}"]), resolve=False)


def _file_identity(path: str | Path, trusted: list[str]) -> tuple[Any, ...]:
    """What makes a read of ``path`` reusable: the same unchanged file and the same trust."""
    resolved = Path(path).resolve()
    status = resolved.stat()
    return str(resolved), status.st_mtime_ns, status.st_size, tuple(trusted)


def command_checkpoint(cfg: DictConfig) -> dict[str, Any]:
    """The checkpoint ``cfg.ckpt_path`` names, trusting ``cfg.trusted_targets``: the one
    `mount_checkpoint` already read for this command when the file is unchanged, so that a
    large checkpoint is read once; otherwise read (and checked) now."""
    from seglab.engine.checkpoints import load_checkpoint

    trusted = trust_names(cfg.get("trusted_targets"))
    try:
        mounted = _mounted.get(_file_identity(cfg.ckpt_path, trusted))
    except OSError:  # a missing file: load_checkpoint says so
        mounted = None
    return mounted if mounted is not None else load_checkpoint(cfg.ckpt_path, trusted)


def mount_checkpoint_config(config: dict[str, Any] | None) -> None:
    """Offer ``config`` (a checkpoint's stored run config, None for none) to Hydra as
    ``checkpoint_run``, without the keys that only describe where and how the run ran."""
    node = OmegaConf.create(config or {})
    # what a command trusts is said on its own command line, never by the file it reads
    for key in INVOCATION_KEYS:
        node.pop(key, None)
    ConfigStore.instance().store(name=CHECKPOINT_RUN, node=node)


def on_checkpoint(prog: str, app: Callable[[], None], config_name: str) -> None:
    """Run the Hydra ``app`` of a command that works on a checkpoint (``seglab-eval``,
    ``-predict``, ``-export``) with that checkpoint's config mounted under its own
    (``conf/<config_name>.yaml``), once its command line is checked against both."""
    from seglab.config.check import check_command_line

    with reported(prog):
        mount_checkpoint(sys.argv[1:])
        check_command_line(prog, config_name, sys.argv[1:], str(config_dir()))
    app()
