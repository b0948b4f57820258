"""Which config keys say what a run computes: one policy for the HPARAMS table, seglab-compare's
columns, the names of multirun jobs, the keys a mounted checkpoint or a resume leaves out, and
the trainer keys seglab applies itself.

A comparison of runs is read as "this setting gave that number", so a column for a setting
that cannot change the number only pushes the ones that can out of view (TensorBoard's HPARAMS
table shows five setting columns).
"""

from __future__ import annotations

from collections.abc import Iterable

#: Nodes that say where a run writes: their values differ between any two runs.
LOCATION_NODES = ("paths", "hydra")
#: Keys about one command, not the run it trains or reads: where it writes, what it resumes or
#: scores, what it trusts and how it searches. A stored run config mounted under a command
#: drops them (`seglab.workflows.mounting`), and a resume does not copy them from its command line
#: into the run it continues (`seglab.engine.resume`).
INVOCATION_KEYS = (
    *LOCATION_NODES,
    "task_name",
    "ckpt_path",
    "resume",
    "split",
    "trusted_targets",
    "hparams_search",
)
#: Nodes about how a run is recorded, resumed, started or judged, never what it trains.
RECORD_NODES = (*INVOCATION_KEYS, "callbacks", "logger", "optimized_metric")
#: How fast a run goes. Worker processes draw their own random augmentations, so a worker
#: count changes the exact numbers as another seed would, never the recipe that made them.
SPEED_KEYS = (
    "data.loader.num_workers",
    "data.loader.pin_memory",
    "data.loader.persistent_workers",
    "data.cache_dir",
)
#: What a run shows while it trains and how often it logs, none of which the model sees.
DISPLAY_KEYS = (
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.log_every_n_steps",
)
#: ``trainer`` keys that seglab applies itself; Lightning's Trainer gets the rest.
PERFORMANCE_KEYS = ("channels_last", "compile", "float32_matmul_precision")


def under(key: str, nodes: Iterable[str]) -> bool:
    """Whether the dotted (or config group) ``key`` is one of ``nodes`` or lies below one."""
    return any(key == node or key.startswith((f"{node}.", f"{node}/")) for node in nodes)


def is_hparam(key: str) -> bool:
    """A setting the HPARAMS table compares runs on."""
    return not under(key, RECORD_NODES) and key not in (*SPEED_KEYS, *DISPLAY_KEYS)


def is_compared(key: str) -> bool:
    """A setting seglab-compare may give a column (where runs differ in it)."""
    return not under(key, LOCATION_NODES) and key not in (*SPEED_KEYS, *DISPLAY_KEYS)


def names_job(key: str) -> bool:
    """An override that may name a multirun job: anything but where it writes or what it
    shows (a sweep over worker counts is told apart by them)."""
    return not under(key, LOCATION_NODES) and key not in DISPLAY_KEYS
