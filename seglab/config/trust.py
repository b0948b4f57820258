"""What a config read from a file may make seglab build.

A checkpoint carries its run's config, and a run directory its ``.hydra/config.yaml``; seglab
rebuilds objects from them with Hydra's ``instantiate``, which imports and calls whatever a
``_target_`` names (``pathlib.Path.write_text`` writes a file). A config from a file is
therefore held to what seglab's own ``conf/`` builds: every ``_target_`` must be one of
`TARGETS`, exactly (a prefix such as ``seglab.`` would let
``seglab.engine.checkpoints.Path.write_text`` through, since Hydra walks attributes of
modules), unless the user trusts it by name.
``tests/config/test_trust.py`` keeps `TARGETS` equal to the targets ``conf/`` names.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from typing import Any, NamedTuple

from seglab.errors import SeglabError

#: Every ``_target_`` that seglab's conf/ names, and nothing else.
TARGETS = frozenset(
    {
        "pytorch_lightning.Trainer",
        "pytorch_lightning.callbacks.EMAWeightAveraging",
        "pytorch_lightning.callbacks.LearningRateMonitor",
        "pytorch_lightning.callbacks.ModelCheckpoint",
        "pytorch_lightning.loggers.TensorBoardLogger",
        "seglab.engine.callbacks.ConfusionMatrixImage",
        "seglab.engine.callbacks.HeadlineCharts",
        "seglab.engine.callbacks.PredictionGrid",
        "seglab.engine.callbacks.RunSummary",
        "seglab.engine.checkpoints.StopOnSignal",
        "seglab.data.CamVidDataModule",
        "seglab.data.FolderDataModule",
        "seglab.data.SyntheticShapesDataModule",
        "seglab.inference.inferer.Inferer",
        "seglab.inference.inferer.TTA",
        "seglab.losses.BinaryCrossEntropyLoss",
        "seglab.losses.CrossEntropyLoss",
        "seglab.losses.DiceLoss",
        "seglab.losses.FocalLoss",
        "seglab.losses.LovaszLoss",
        "seglab.losses.TverskyLoss",
        "seglab.losses.WeightedSumLoss",
        "seglab.methods.FixMatch",
        "seglab.methods.MeanTeacher",
        "seglab.methods.Supervised",
        "seglab.sweeps.mlflow_logging.MLflowRunLogger",
        "seglab.models.CBAM",
        "seglab.models.ConvEncoder",
        "seglab.models.DeepLabV3PlusDecoder",
        "seglab.models.FCNDecoder",
        "seglab.models.FPNDecoder",
        "seglab.models.MLPDecoder",
        "seglab.models.MobileNetV3Encoder",
        "seglab.models.PixelSelfAttention",
        "seglab.models.PSPDecoder",
        "seglab.models.ResNetEncoder",
        "seglab.models.SCSEAttention",
        "seglab.models.SegNetDecoder",
        "seglab.models.Segmenter",
        "seglab.models.TimmEncoder",
        "seglab.models.TransposedConvDecoder",
        "seglab.models.UNetDecoder",
        "seglab.runs.directories.RunDirGuard",
        "seglab.engine.schedulers.constant",
        "seglab.engine.schedulers.cosine",
        "seglab.engine.schedulers.poly",
        "seglab.sweeps.hparams.SweepExperiment",
        "torch.nn.Identity",
        "torch.optim.AdamW",
        "torch.optim.SGD",
        "torch.optim.lr_scheduler.OneCycleLR",
    }
)
#: The Hydra callbacks of conf/hydra and conf/hparams_search: all a re-run may install.
HYDRA_CALLBACKS = frozenset(
    {"seglab.runs.directories.RunDirGuard", "seglab.sweeps.hparams.SweepExperiment"}
)
#: Values of conf/ that call a resolver and reach a run's saved ``.hydra/config.yaml``; a re-run
#: resolves them again, as the original run did (trainer=cpu's precision follows the CPU it
#: runs on). A checkpoint's config was saved resolved and calls none.
RERUN_RESOLVER_VALUES = frozenset(
    {
        "${seglab.cpu_precision:}",
        "${hydra:runtime.output_dir}",
        "${oc.env:XDG_CACHE_HOME,'~/.cache'}/seglab",
        "${len:${.classes}}",
    }
)
#: Keys through which Hydra calls or shapes a call: only a node with a trusted target has them.
_HYDRA_KEYS = ("_target_", "_args_", "_partial_", "_recursive_", "_convert_")
#: ``${name:...}``: an interpolation that calls a resolver (``oc.env``, ``oc.decode``, ``now``...)
_RESOLVER_CALL = re.compile(r"\$\{[^}]*:")
#: Top-level nodes that Hydra reads as its own settings (callbacks, environment, search path)
#: or as a defaults list; seglab saves neither in a checkpoint or a run's config.yaml.
_HYDRA_NODES = ("hydra", "defaults")


class Untrusted(NamedTuple):
    """The first part of a config that seglab would not build from a file."""

    #: where it is, as a dotted key with list indices (``model.encoder._args_[0]._target_``)
    key: str
    #: why, for the one-line error
    reason: str
    #: the target the user could trust by name; None where trusting a name would not help
    target: str | None = None


def untrusted_part(
    config: Any, trusted: Collection[str] = (), resolver_values: Collection[str] = ()
) -> Untrusted | None:
    """The first node or value of ``config`` (plain dicts and lists, read unresolved) that is
    not safe to compose and instantiate, else None.

    Refused: a ``_target_`` outside `TARGETS` and ``trusted``; a Hydra key (``_args_``,
    ``_partial_``...) in a node without such a target; a string calling a resolver unless it is
    one of ``resolver_values``; a top-level ``hydra`` or ``defaults`` node.
    """
    if isinstance(config, dict):
        for name in _HYDRA_NODES:
            if name in config:
                return Untrusted(name, f"{name} is a node Hydra reads as its own settings")
    allowed = TARGETS | set(trusted)
    for key, node in _walk(config, ""):
        if isinstance(node, dict) and any(name in node for name in _HYDRA_KEYS):
            target = node.get("_target_")
            where = f"{key}._target_" if key else "_target_"
            if target is None:
                hydra_keys = ", ".join(name for name in _HYDRA_KEYS if name in node)
                return Untrusted(key, f"{hydra_keys} in a node without a _target_")
            if not isinstance(target, str) or target not in allowed:
                return Untrusted(
                    where, f"{where}={target} is not a target seglab's configs build", str(target)
                )
        elif isinstance(node, str) and _RESOLVER_CALL.search(node) and node not in resolver_values:
            return Untrusted(key, f"{key}={node} calls a resolver")
    return None


def refuse_untrusted(config: Any, trusted: Collection[str], source: str) -> None:
    """Raise `SeglabError` naming ``source`` (``ckpt_path=<file>``) and `untrusted_part` of
    ``config``, the config of a file, so that a checkpoint and an ONNX file refuse alike."""
    untrusted = untrusted_part(config, trusted)
    if untrusted is None:
        return
    trust = (
        "if you made this file with your own components and trust them, add "
        f"trusted_targets=[{untrusted.target}]"
        if untrusted.target
        else "seglab never writes that into a file, so the file was made or changed elsewhere"
    )
    raise SeglabError(
        f"{source}: {untrusted.reason}, which a config read from a file could run code "
        f"through, so nothing was built from it; {trust}"
    )


def _walk(node: Any, key: str) -> Iterator[tuple[str, Any]]:
    """Every node and value below ``node`` (itself first), with its dotted key."""
    yield key, node
    if isinstance(node, dict):
        for name, child in node.items():
            yield from _walk(child, f"{key}.{name}" if key else str(name))
    elif isinstance(node, list | tuple):
        for index, child in enumerate(node):
            yield from _walk(child, f"{key}[{index}]")


def trust_names(value: Any) -> list[str]:
    """``trusted_targets`` as a list of names: a list, one name, or nothing (None, "")."""
    if value in (None, ""):
        return []
    return [str(value)] if isinstance(value, str) else [str(name) for name in value]
