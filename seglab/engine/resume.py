"""Continuing a run: which checkpoint a command continues, into which run directory, and with
which config. The one place that decides a resume, for seglab-train and for the run-directory
resolvers of ``conf/hydra/default.yaml`` alike."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, NamedTuple

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from seglab.config.keys import INVOCATION_KEYS
from seglab.config.location import config_dir
from seglab.config.trust import trust_names
from seglab.engine.checkpoints import CHECKPOINT_KEY, load_checkpoint
from seglab.errors import MissingCheckpointError, SeglabError, UnreadableCheckpointError
from seglab.runs.directories import fallback_checkpoint, resume_checkpoint, resumed_run_dir

log = logging.getLogger(__name__)


class Resume(NamedTuple):
    """What a continued run starts from."""

    #: the checkpoint's stored config with the command's overrides on top
    config: DictConfig
    #: the checkpoint read (``last.ckpt``, or ``best.ckpt`` when that is unreadable)
    checkpoint: Path
    #: its global step, from which TensorBoard drops what the interrupted run logged
    step: int


def checkpoint_config(stored: dict[str, Any], cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """A checkpoint's ``stored`` run config with the user's command-line overrides on top.

    ``cfg`` is the composed train config, in which Hydra already applied ``overrides``;
    each override copies its resulting value (or, for a config group such as ``data=...``,
    the whole selected node) from there into the checkpoint's config.
    """
    stored = OmegaConf.create(stored)
    groups = config_dir()
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        if key.split(".")[0] in INVOCATION_KEYS:  # about the command, not the run it continues
            continue
        target = key.replace("/", ".") if (groups / key).is_dir() else key
        if override.is_delete():
            parent, _, leaf = target.rpartition(".")
            node = OmegaConf.select(stored, parent) if parent else stored
            if node is not None and leaf in node:
                node.pop(leaf)
            continue
        value = OmegaConf.select(cfg, target, throw_on_missing=False)
        OmegaConf.update(stored, target, value, merge=False, force_add=True)
    stored.paths = cfg.paths
    return stored


def resume(cfg: DictConfig, run_dir: Path, overrides: list[str]) -> Resume | None:
    """For a command that continues a run (``ckpt_path`` or ``resume``): where it starts from,
    with the command line's ``overrides`` on the checkpoint's config.

    None for a fresh run. Refuses, naming the path, whatever cannot be continued in place.
    """
    ckpt_path, resume = cfg.get("ckpt_path"), cfg.get("resume")
    path = resume_checkpoint(ckpt_path, resume)
    if path is None:
        return None
    if ckpt_path and resume:
        raise SeglabError(
            f"ckpt_path={ckpt_path} and resume={resume} both name a run to continue; give one"
        )
    fallback = fallback_checkpoint(path)
    if resume and not path.is_file() and fallback is None:
        raise SeglabError(
            f"no checkpoint to resume: {path} does not exist; resume=true works from inside a "
            "run directory of seglab-train, resume=<run dir> from anywhere"
        )
    trusted = trust_names(cfg.get("trusted_targets"))
    try:
        checkpoint = load_checkpoint(path, trusted)
    except (UnreadableCheckpointError, MissingCheckpointError) as error:
        if fallback is None:
            raise
        checkpoint = load_checkpoint(fallback, trusted)
        log.warning(
            "%s; resuming from %s instead (epoch %d): the epochs after it are trained again",
            error,
            fallback,
            checkpoint["epoch"],
        )
        path = fallback
    owner = resumed_run_dir(ckpt_path, resume)
    if owner is None:
        raise SeglabError(
            f"ckpt_path={path} is not in a run's checkpoints/ folder; seglab-train continues "
            "the run that saved it: give <run>/checkpoints/last.ckpt"
        )
    if owner.resolve() != run_dir.resolve():
        raise SeglabError(
            f"ckpt_path={path} continues run {owner}, but this job writes to {run_dir}; "
            "resume as a single run, without -m or hydra.run.dir"
        )
    trained_in = OmegaConf.select(
        OmegaConf.create(checkpoint[CHECKPOINT_KEY]["config"]), "paths.output_dir"
    )
    if trained_in and Path(trained_in).resolve() != owner.resolve():
        raise SeglabError(
            f"{path} was saved by the run in {trained_in}, where its config writes checkpoints "
            f"and logs; move {owner} back there to resume it"
        )
    config = checkpoint_config(checkpoint[CHECKPOINT_KEY]["config"], cfg, overrides)
    config.ckpt_path, config.resume = ckpt_path, resume
    epochs_done = checkpoint["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"]
    max_epochs = config.trainer.get("max_epochs")
    if max_epochs not in (None, -1) and epochs_done >= max_epochs:
        raise SeglabError(
            f"run {owner} already finished its trainer.max_epochs={max_epochs} epochs ({path}); "
            "nothing to resume; score it with seglab-eval, or train longer in a new run"
        )
    return Resume(config, path, int(checkpoint["global_step"]))
