"""Run directories: choosing and guarding them, naming multirun jobs, and reading finished runs
back through TensorBoard's own event reader."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from seglab.config.keys import names_job
from seglab.errors import SeglabError, fail

if TYPE_CHECKING:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

# keep every point: the defaults subsample long scalar series and keep only a few images
_SIZE_GUIDANCE = {"scalars": 0, "images": 0, "tensors": 0}
_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]")
_MAX_NAME = 120
#: A run's TensorBoard event files lie in its directory itself, so that TensorBoard names the run
#: by the directory alone (``<sweep>/lr=0.001``, not ``<sweep>/lr=0.001/tensorboard``).
EVENT_FILES = "events.out.tfevents.*"
#: Written in a run directory when an Optuna pruner stopped the run: the trial, the epoch after
#: which it stopped and the value it reported then.
PRUNED_FILE = "pruned.yaml"


#: Environment variable holding the keys a multirun sweeps, comma-separated (set by seglab-train).
SWEPT_KEYS_ENV = "SEGLAB_SWEPT_KEYS"


def resume_checkpoint(ckpt_path: str | None, resume: bool | str | None) -> Path | None:
    """The checkpoint a ``seglab-train`` command continues from; None for a fresh run.

    ``ckpt_path`` names it; ``resume=<run dir>`` (``resume=true``: the working directory)
    stands for that run's ``checkpoints/last.ckpt``.
    """
    if ckpt_path:
        return Path(ckpt_path)
    if resume is True:
        return Path.cwd() / "checkpoints" / "last.ckpt"
    if isinstance(resume, str) and resume:
        return Path(resume) / "checkpoints" / "last.ckpt"
    return None


def fallback_checkpoint(checkpoint: Path) -> Path | None:
    """``best.ckpt`` beside a ``last.ckpt``: where a resume goes when ``last.ckpt`` is missing
    or unreadable (a crash before the first one was written, a damaged disk). None otherwise."""
    best = checkpoint.with_name("best.ckpt")
    return best if checkpoint.name == "last.ckpt" and best.is_file() else None


def resumed_run_dir(ckpt_path: str | None, resume: bool | str | None) -> Path | None:
    """The run directory a resume writes into: the one holding the checkpoint in its
    ``checkpoints/``. None for a fresh run, and for a checkpoint that is missing (with no
    `fallback_checkpoint`) or lies elsewhere, so that Hydra never creates files in a directory
    that is not a run's (seglab-train then says what is wrong)."""
    checkpoint = resume_checkpoint(ckpt_path, resume)
    if checkpoint is None or checkpoint.parent.name != "checkpoints":
        return None
    if not checkpoint.is_file() and fallback_checkpoint(checkpoint) is None:
        return None
    return Path(os.path.abspath(checkpoint)).parent.parent


def job_name(
    overrides: Sequence[str], num: int | str, sweeper_params: Mapping[str, Any] | None = None
) -> str:
    """A multirun job's directory name, made from its overrides so that it says what it is.

    The name is also the job's TensorBoard run, which TensorBoard's run list and image cards cut
    after about twenty characters; so it says what tells the jobs apart, and no more. Only the
    swept overrides name a job: those seglab-train recorded from the command line (in their
    order there), then the keys of ``hydra.sweeper.params`` (``sweeper_params``, where a config
    such as an Optuna search declares its space); an override that all jobs share tells them
    apart from nothing. Each key is shortened to its last part, as long as no two keys then
    read the same: ``optimizer.lr=0.001 model/attention=none`` becomes
    ``lr=0.001,attention=none`` (``.hydra/overrides.yaml`` keeps the full overrides).
    Characters a filesystem or shell would trip on become ``_``, and a name that had to be
    changed that way or shortened gets a hash of the overrides, so two jobs never share a name.
    """
    items = [str(item) for item in overrides]
    swept = [key for key in os.environ.get(SWEPT_KEYS_ENV, "").split(",") if key]
    swept += [str(key) for key in sweeper_params or {} if str(key) not in swept]

    def key(item: str) -> str:
        return item.split("=", 1)[0].lstrip("+~")

    kept = [item for item in items if names_job(key(item))]
    if swept:
        kept = sorted(
            (item for item in kept if key(item) in swept), key=lambda item: swept.index(key(item))
        )
    else:
        kept.sort()
    if not kept:
        return f"job{num}"
    short = short_keys([key(item) for item in kept])
    name = ",".join(f"{short[key(item)]}={item.split('=', 1)[1]}" for item in kept)
    safe = _UNSAFE.sub("_", name)[:_MAX_NAME]
    if safe != name:
        safe += "-" + hashlib.sha1(",".join(kept).encode()).hexdigest()[:8]
    return safe


def short_keys(keys: Sequence[str]) -> dict[str, str]:
    """Each dotted (or group) key by its last part, or by as many of its last parts as it takes
    to tell it from the others: ``optimizer.lr`` -> ``lr``, but ``model.encoder.depth`` and
    ``model.decoder.depth`` -> ``encoder.depth`` and ``decoder.depth``."""
    parts = {key: key.replace("/", ".").split(".") for key in keys}
    depth = {key: 1 for key in keys}
    while True:
        short = {key: ".".join(parts[key][-depth[key] :]) for key in keys}
        clashing = [
            key
            for key in keys
            if list(short.values()).count(short[key]) > 1 and depth[key] < len(parts[key])
        ]
        if not clashing:
            return short
        for key in clashing:
            depth[key] += 1


def claim_run_dir(wanted: str) -> str:
    """``wanted``, else ``wanted-1``, ``wanted-2``...: the first one this call creates.

    Creating the directory is what claims it, so two runs that start in the same microsecond
    (the jobs of a job array) never share one: the second finds it taken and takes the next.
    """
    Path(wanted).parent.mkdir(parents=True, exist_ok=True)
    candidate, attempt = wanted, 0
    while True:
        try:
            os.mkdir(candidate)
            return candidate
        except FileExistsError:
            attempt += 1
            candidate = f"{wanted}-{attempt}"


#: The command each task is run by, for its error messages.
_COMMANDS = {"data_stats": "seglab-data"}


#: What makes a directory a run's (glob patterns; event files are TensorBoard's).
RUN_MARKERS = (".hydra", "checkpoints", EVENT_FILES)


class RunDirGuard(Callback):
    """Gives a run a directory of its own before Hydra writes into it.

    A directory named by the time (``${now:...}`` in ``hydra.run.dir``) is claimed by creating
    it (`claim_run_dir`): a run that finds its name taken moves to the next free one. A
    directory the user named is refused if it holds another run's files: Hydra saves the job's
    ``.hydra/*.yaml`` there before the job starts, so the other run's record would be lost even
    though seglab-train then refuses to train there. Resuming a run into its own directory is
    allowed; so are runs that record nothing (``hydra.output_subdir: null``, as the other ranks
    of a DDP run are started), which share their rank 0's directory.

    Args:
        markers: the entries that make a directory another run's (glob patterns).
    """

    def __init__(self, markers: Sequence[str] = RUN_MARKERS) -> None:
        self.markers = list(markers)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.output_subdir is None:
            return
        run_dir = Path(os.path.abspath(config.hydra.run.dir))
        resumed = resumed_run_dir(config.get("ckpt_path"), config.get("resume"))
        if config.get("task_name") == "train" and resumed == run_dir:
            return
        if "${now:" in str(OmegaConf.to_container(config.hydra.run)["dir"]):
            claimed = claim_run_dir(str(run_dir))
            if claimed != str(run_dir):
                with open_dict(config.hydra.run), read_write(config.hydra.run):
                    config.hydra.run.dir = claimed
            return
        held = [name for name in self.markers if any(run_dir.glob(name))]
        if held:
            task = str(config.get("task_name"))
            fail(
                _COMMANDS.get(task, f"seglab-{task}"),
                f"run directory {run_dir} already holds {', '.join(held)} of another run; "
                "choose a new hydra.run.dir (a run is continued with "
                "ckpt_path=<run>/checkpoints/last.ckpt)",
            )


def check_fresh_run_dir(run_dir: Path) -> None:
    """A run never writes into another run's results."""
    taken = [name for name in ("checkpoints", EVENT_FILES) if any(run_dir.glob(name))]
    if taken:
        raise SeglabError(
            f"run directory {run_dir} already holds {', '.join(taken)} of another run; "
            "choose a new hydra.run.dir"
        )


def event_dir(run_dir: str | Path) -> Path | None:
    """Where a run's event files are: the run directory itself, or its ``tensorboard/`` folder
    for runs recorded before they moved up (None when there are none)."""
    for folder in (Path(run_dir), Path(run_dir) / "tensorboard"):
        if any(folder.glob(EVENT_FILES)):
            return folder
    return None


def load_events(run_dir: str | Path) -> EventAccumulator:
    """All events a run wrote (its event files, beside ``.hydra/`` and ``checkpoints/``)."""
    log_dir = event_dir(run_dir)
    if log_dir is None:
        raise FileNotFoundError(f"{run_dir} holds no TensorBoard event file")
    # imported here: `import seglab` (every entry point) registers this module's resolvers and
    # should not pay for TensorBoard's reader
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    return EventAccumulator(str(log_dir), size_guidance=_SIZE_GUIDANCE).Reload()


def read_scalars(run_dir: str | Path | EventAccumulator) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag of a run as ``(step, value)`` points in logging order.

    Takes the events already loaded by :func:`load_events` too, so that a reader needing more
    than scalars decodes the event files once.
    """
    events = load_events(run_dir) if isinstance(run_dir, str | os.PathLike) else run_dir
    return {
        tag: [(event.step, event.value) for event in events.Scalars(tag)]
        for tag in events.Tags()["scalars"]
    }


def wall_time(events: EventAccumulator) -> float | None:
    """Seconds from a run's first logged value to its last (None if it logged nothing).

    The event file's own header is left out: it is stamped when the writer opens, which need
    not be when the run started logging. So is a sweep's HPARAMS experiment, which the sweep
    writes into its first job's directory when its last job ends
    (`seglab.sweeps.hparams.write_sweep_experiment`): it is no event of that job's training.
    """
    from tensorboard.plugins.hparams.metadata import EXPERIMENT_TAG

    tags = events.Tags()
    times = [
        event.wall_time
        for kind, read in (
            ("scalars", events.Scalars),
            ("tensors", events.Tensors),
            ("images", events.Images),
        )
        for tag in tags.get(kind, [])
        if tag != EXPERIMENT_TAG
        for event in read(tag)
    ]
    return max(times) - min(times) if times else None


def read_hparams(run_dir: str | Path | EventAccumulator) -> dict[str, object]:
    """The settings a run registered in TensorBoard's HPARAMS tab (its session start); takes
    loaded events too, like :func:`read_scalars`."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    events = load_events(run_dir) if isinstance(run_dir, str | os.PathLike) else run_dir
    params: dict[str, object] = {}
    for content in events.PluginTagToContent("hparams").values():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        if data.HasField("session_start_info"):
            for name, value in data.session_start_info.hparams.items():
                params[name] = getattr(value, value.WhichOneof("kind"))
    return params


def group_choices(run_dir: str | Path) -> dict[str, str]:
    """The option a run picked in each config group (``model/decoder: unet``), as the user
    wrote it, from the ``.hydra/hydra.yaml`` Hydra saved; groups left empty are left out."""
    path = Path(run_dir) / ".hydra" / "hydra.yaml"
    if not path.is_file():
        return {}
    choices = OmegaConf.select(OmegaConf.load(path), "hydra.runtime.choices", default=None)
    if choices is None:
        return {}
    return {
        str(group): str(choice)
        for group, choice in OmegaConf.to_container(choices).items()
        if choice is not None
    }
