"""Checkpoints: written so that a crash cannot spoil them and a signal leaves one behind, and
read back without running code.

Lightning writes a checkpoint by truncating the file and streaming into it: a job killed, or a
disk filled, in between leaves neither the old checkpoint nor the new one. `AtomicCheckpointIO`
writes beside the target and renames the finished file onto it, so the target is always the
previous checkpoint or the new one, whole. `StopOnSignal` turns SIGTERM (how schedulers announce
preemption) and SIGINT (Ctrl+C) into a stop at the next batch boundary with ``last.ckpt``
written, from which the run resumes where it stopped. `load_checkpoint` reads tensors and plain
data only, and refuses a stored config that names anything seglab's configs do not build
(`seglab.config.trust`), so a checkpoint from anywhere can be opened without running code from it.
"""

from __future__ import annotations

import logging
import pickle
import re
import signal
import threading
from collections.abc import Collection
from pathlib import Path
from types import FrameType
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins import TorchCheckpointIO

from seglab.atomic import atomic_path
from seglab.config.trust import refuse_untrusted
from seglab.config.upgrade import upgrade_config
from seglab.errors import MissingCheckpointError, SeglabError, UnreadableCheckpointError

log = logging.getLogger(__name__)
#: The entry of a Lightning checkpoint that holds seglab's own record: the run's resolved config
#: and the best scores so far.
CHECKPOINT_KEY = "seglab"


class CheckpointWriteError(OSError):
    """A checkpoint could not be written; the file it was to replace is as it was."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """`TorchCheckpointIO` that replaces a checkpoint only with a complete, flushed file.

    The new checkpoint goes to a hidden ``.<name>.*.partial`` file in the same directory, with
    the umask's permissions, reaches the disk and is then renamed onto ``path``
    (`seglab.atomic.atomic_path`). A partial file that a killed process left behind is removed
    by the next save of the same checkpoint. Remote paths (``s3://...``) are written as
    Lightning writes them.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        if "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        if storage_options is not None:
            raise TypeError(
                f"{type(self).__name__}.save_checkpoint takes no storage_options, got "
                f"{storage_options!r}"
            )
        target = Path(path)
        try:
            with atomic_path(target, remove_stale=True) as partial, open(partial, "wb") as file:
                torch.save(checkpoint, file)
        except OSError as error:
            kept = f"the previous {target.name} is unchanged" if target.exists() else "none exists"
            raise CheckpointWriteError(
                f"could not write checkpoint {target} ({type(error).__name__}: {error}); {kept}"
            ) from error


class RunInterrupted(Exception):
    """Training stopped on a signal; ``checkpoint`` holds the run as it stopped, if written."""

    def __init__(self, signum: int, checkpoint: Path | None, epoch: int, step: int) -> None:
        self.signum = signum
        self.checkpoint = checkpoint
        name = signal.Signals(signum).name
        saved = f"{checkpoint} holds it" if checkpoint else "nothing was trained to save"
        super().__init__(f"stopped by {name} in epoch {epoch} at step {step}; {saved}")


class StopOnSignal(pl.Callback):
    """On SIGTERM or SIGINT, finish the batch, write ``path`` and stop with `RunInterrupted`.

    A checkpoint written at the end of a training batch is one Lightning resumes from exactly:
    the rest of the epoch's batches follow (in a new shuffle order). A signal during the last
    batch of an epoch, or during validation, is served at the next batch instead, after the
    epoch's own last checkpoint. A second SIGINT stops at once, without a checkpoint.

    Only single-process runs install the handlers: a signal reaching one rank of a distributed
    run cannot stop the others at the same batch, so there Lightning's own handling applies and
    the run resumes from the last epoch's checkpoint.

    Args:
        path: the run's last checkpoint (``<run>/checkpoints/last.ckpt``), which a resume reads.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.received: int | None = None
        self._saved = False
        self._previous: dict[int, Any] = {}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # installed over Lightning's handler, which would end the run without a checkpoint
        if trainer.world_size > 1 or threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, self._receive)

    def _receive(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum
        log.warning(
            "%s received: stopping after this batch and writing %s (Ctrl+C again stops at once)",
            signal.Signals(signum).name,
            self.path,
        )

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if self.received is None or self._saved:
            return
        if not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            trainer.save_checkpoint(self.path, weights_only=False)
            self._saved = True

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        # stop once this batch's state is saved, or nothing was trained since the epoch's end
        if self.received is not None and (self._saved or batch_idx == 0):
            self._stop(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.received is not None:
            self._stop(trainer)

    def _stop(self, trainer: pl.Trainer) -> None:
        self._restore()
        checkpoint = self.path if self.path.is_file() else None
        raise RunInterrupted(self.received, checkpoint, trainer.current_epoch, trainer.global_step)

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._restore()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._restore()


def load_checkpoint(path: str | Path, trusted: Collection[str] = ()) -> dict[str, Any]:
    """Read a seglab checkpoint without running any pickled code in it, and refuse it if its
    config would build anything but seglab's own components and the ``trusted`` targets."""
    path = Path(path)
    if not path.is_file():
        raise MissingCheckpointError(f"ckpt_path={path} does not exist")
    try:
        # plain data and tensors only: a pickled object that would run code is refused unrun
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch names what the file asked to import as "GLOBAL <module>.<name>"
        named = re.search(r"GLOBAL (\S+)", str(error))
        reason = f"it refers to {named.group(1).rstrip('.')}" if named else "it is not plain data"
        raise SeglabError(
            f"ckpt_path={path} holds pickled objects that are not tensors or plain data "
            f"({reason}), and seglab does not run code from a checkpoint; use a checkpoint "
            "written by seglab-train, and load this one with torch.load(weights_only=False) "
            "only if you trust its source"
        ) from None
    except Exception as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise UnreadableCheckpointError(
            f"ckpt_path={path} is not a loadable checkpoint ({type(error).__name__}: {first_line})"
        ) from None
    if not isinstance(checkpoint, dict) or CHECKPOINT_KEY not in checkpoint:
        raise SeglabError(
            f"ckpt_path={path} is not a seglab checkpoint (it has no '{CHECKPOINT_KEY}' entry); "
            "use a file from <run>/checkpoints/"
        )
    config = checkpoint[CHECKPOINT_KEY].get("config")
    if not config:
        raise SeglabError(f"ckpt_path={path} carries no run configuration")
    upgrade_config(config)
    refuse_untrusted(config, trusted, f"ckpt_path={path}")
    return checkpoint


def model_state(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The Segmenter's weights in a checkpoint of the whole task (``model.`` keys)."""
    prefix = "model."
    return {
        key.removeprefix(prefix): value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith(prefix)
    }
