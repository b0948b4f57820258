"""How a datamodule's datasets become dataloaders: the loader options (``data.loader``), and
the share of an evaluation split that each process of a distributed run scores."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset, Sampler

from seglab.data.sampling import check_repeat_threshold
from seglab.data.settings import normalised


@dataclass(frozen=True)
class LoaderSettings:
    """``data.loader``: how batches are drawn and loaded; checked when made, naming the key.

    Attributes:
        batch_size: training batch size.
        eval_batch_size: batch size for validation and test; ``batch_size`` when None.
        num_workers: dataloader worker processes; 0 loads in the main process.
        pin_memory: pin batches in page-locked memory for faster host-to-GPU copies.
        persistent_workers: keep workers alive between epochs (only used with workers).
        drop_last: drop the last incomplete training batch, which keeps BatchNorm away from a
            batch of a single sample.
        repeat_threshold: class-balanced sampling (`seglab.data.sampling`): images of classes
            that appear in fewer than this share of the training images are shown more often
            per epoch. None (also for configs saved before it): each image once per epoch.
    """

    batch_size: int
    eval_batch_size: int | None
    num_workers: int
    pin_memory: bool
    persistent_workers: bool
    drop_last: bool
    repeat_threshold: float | None = None

    def __post_init__(self) -> None:
        batch = int(self.batch_size)
        normalised(
            self,
            batch_size=batch,
            eval_batch_size=batch if self.eval_batch_size is None else int(self.eval_batch_size),
            num_workers=int(self.num_workers),
            pin_memory=bool(self.pin_memory),
            persistent_workers=bool(self.persistent_workers),
            drop_last=bool(self.drop_last),
            repeat_threshold=check_repeat_threshold(self.repeat_threshold),
        )
        for key in ("batch_size", "eval_batch_size"):
            if getattr(self, key) <= 0:
                raise ValueError(
                    f"data.loader.{key}={getattr(self, key)} must be positive, e.g. "
                    f"data.loader.{key}=8"
                )
        if self.num_workers < 0:
            raise ValueError(
                f"data.loader.num_workers={self.num_workers} must be >= 0 (0 loads in the main "
                "process)"
            )


def shard_sampler(dataset: Dataset, split: str, shards: dict[str, Any] | None) -> Sampler | None:
    """The sampler of this process's share of an evaluation ``split``; None in a run of one
    process. ``shards`` is the trainer's ``distributed_sampler_kwargs`` (None without one).

    Lightning's own distributed sampler pads a split whose size the number of processes
    does not divide with repeats of its first images, which would then count twice in the
    confusion matrix summed over the processes. Process ``r`` of ``n`` gets images ``r``,
    ``r + n``, ... instead, none repeated, so one process may run a batch more than
    another: DistributedDataParallel syncs buffers on the first evaluation batch only, and
    the metric states are summed once, when the epoch ends, so no process waits for a
    batch that never comes (a process with no image at all would leave the others waiting
    at that first sync, hence the error for a split smaller than the number of processes).
    The split is sharded even with ``trainer.use_distributed_sampler=false``, whose every
    process would otherwise score the whole split, counting it once per process.
    """
    if not shards or shards["num_replicas"] <= 1:
        return None
    if len(dataset) < shards["num_replicas"]:
        raise ValueError(
            f"the {split} split has {len(dataset)} images but the distributed run has "
            f"{shards['num_replicas']} processes, each of which needs one; use fewer "
            "processes (trainer.devices, trainer.num_nodes) or more images"
        )
    return UnrepeatedDistributedSampler(dataset, shuffle=False, **shards)


def dataloader(
    dataset: Dataset,
    batch_size: int,
    settings: LoaderSettings,
    collate_fn: Callable[[list[Any]], Any],
    shuffle: bool = False,
    drop_last: bool = False,
    sampler: Sampler | None = None,
) -> DataLoader:
    """A `DataLoader` of ``batch_size`` with the workers and pinning of ``settings``;
    ``persistent_workers`` only counts with workers, as DataLoader rejects it without."""
    workers = settings.num_workers
    persistent = {"persistent_workers": settings.persistent_workers} if workers > 0 else {}
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=workers,
        pin_memory=settings.pin_memory,
        collate_fn=collate_fn,
        **persistent,
    )
