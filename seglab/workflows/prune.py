"""What ``seglab-prune`` does: a trained checkpoint's network with its weakest channels
removed (seglab/compression/channel_pruning.py), then fine-tuned in a run of its own.

The run is a training run like any other, made by seglab-train's own path
(`seglab.workflows.training`) from the checkpoint's config with the command line on top,
around the pruned network: its
directory is ``outputs/prune/<time>/``, with TensorBoard events, ``checkpoints/best.ckpt`` and
``last.ckpt``, and ``seglab-train ckpt_path=<run>/checkpoints/last.ckpt`` continues it. Its
config records ``pruned`` (amount, importance, source checkpoint), which tells every command
reading its checkpoints to take the channel counts of the weights. ``pruned.ckpt`` beside
``checkpoints/`` holds the network as pruned, before any fine-tuning.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from seglab.compression.channel_pruning import (
    PRUNED_KEY,
    check_amount,
    check_importance,
    parameter_count,
    prune_channels,
)
from seglab.config.spec import resolve_spec
from seglab.engine.checkpoints import CHECKPOINT_KEY
from seglab.workflows.build import trained_model
from seglab.workflows.mounting import command_checkpoint
from seglab.workflows.training import train

log = logging.getLogger(__name__)
#: The options of the command itself, which the run's config does not keep.
_OPTIONS = ("amount", "importance")
#: The file beside a prune run's checkpoints/ that holds the network as pruned.
PRUNED_CHECKPOINT = "pruned.ckpt"


def run_config(cfg: DictConfig, source_dir: str | None) -> DictConfig:
    """The config of the fine-tuning run: the command's, as a new run (no checkpoint to
    continue) that records what made its network.

    The checkpoint's config was saved resolved, so its checkpoint folder, TensorBoard folder
    and other records name the source run's directory, ``source_dir``: each such path is
    moved into this run's own (``${paths.output_dir}``), so nothing is written into the source.
    """
    container = OmegaConf.to_container(cfg, resolve=False)
    run = OmegaConf.create(_moved(container, source_dir) if source_dir else container)
    with open_dict(run):
        for key in _OPTIONS:
            run.pop(key)
        run.ckpt_path, run.resume = None, False
        run[PRUNED_KEY] = {
            "amount": float(cfg.amount),
            "importance": str(cfg.importance),
            "source": str(Path(cfg.ckpt_path).resolve()),
        }
    return run


def _moved(node: Any, source_dir: str) -> Any:
    """``node`` with every path in ``source_dir`` rewritten to the same path in the run's own
    directory."""
    if isinstance(node, dict):
        return {key: _moved(value, source_dir) for key, value in node.items()}
    if isinstance(node, list):
        return [_moved(value, source_dir) for value in node]
    if isinstance(node, str) and (node == source_dir or node.startswith(source_dir + "/")):
        return "${paths.output_dir}" + node[len(source_dir) :]
    return node


def prune(cfg: DictConfig) -> dict[str, float]:
    """Prune the checkpoint's network, fine-tune it in this command's run directory; returns
    the run's final metrics, as seglab-train does."""
    amount, _ = check_amount(cfg.amount), check_importance(cfg.importance)
    checkpoint = command_checkpoint(cfg)
    source_dir = OmegaConf.select(
        OmegaConf.create(checkpoint[CHECKPOINT_KEY]["config"]), "paths.output_dir"
    )
    run = run_config(cfg, source_dir)
    model = trained_model(resolve_spec(run), checkpoint)
    size = 2 * max(int(getattr(model, "size_multiple", 1)), 16)
    channels = model.in_channels or OmegaConf.select(run, "data.in_channels", default=3)
    before = parameter_count(model)
    prune_channels(model, amount, str(cfg.importance), torch.zeros(1, channels, size, size))
    log.info(
        "pruned %s of the channels (%s importance): %d parameters, %d before",
        amount,
        cfg.importance,
        parameter_count(model),
        before,
    )
    _save_pruned(model, run)
    return train(run, model=model.train())


def _save_pruned(model: torch.nn.Module, run: DictConfig) -> None:
    """The pruned network before fine-tuning, as a checkpoint every reading command takes."""
    run_dir = Path(run.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {"config": OmegaConf.to_container(run, resolve=True), "best": {}}
    record["classes"] = list(run.data.classes)
    state = {f"model.{key}": value for key, value in model.state_dict().items()}
    torch.save({CHECKPOINT_KEY: record, "state_dict": state}, run_dir / PRUNED_CHECKPOINT)
