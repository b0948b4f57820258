"""How a datamodule's datasets become dataloaders: the loader options, and the share of an
evaluation split that each process of a distributed run scores."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset, Sampler


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
    num_workers: int,
    pin_memory: bool,
    persistent_workers: bool,
    collate_fn: Callable[[list[Any]], Any],
    shuffle: bool = False,
    drop_last: bool = False,
    sampler: Sampler | None = None,
) -> DataLoader:
    """A `DataLoader` with the ``data.`` loader options; ``persistent_workers`` only counts
    with workers, as DataLoader rejects it without."""
    workers = {"persistent_workers": persistent_workers} if num_workers > 0 else {}
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=num_workers,
        pin_memory=pin_memory,
        collate_fn=collate_fn,
        **workers,
    )
