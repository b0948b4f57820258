"""Structured channel pruning of a Segmenter, and rebuilding a pruned one from its weights.

Removing a convolution's output channel is only half of the change: every layer that reads
those channels (a BatchNorm, the next convolution, a skip connection's concatenation in the
decoder, a residual sum) must lose the same ones. Torch-Pruning (``pip install
"seglab[prune]"``) traces the network once and groups the layers whose channels are coupled
in this way, so that a group is pruned as one. Its channels are ranked by the norm of their
weights across the group (L1 or L2, ``importance``), and the weakest ``amount`` of every group
are removed. The classifiers (the head and any auxiliary heads) keep their outputs: the class
count never changes.

The attention blocks are handed to Torch-Pruning as opaque layers that keep their channel
count, with their own rule for which of their convolutions read and write those channels:
their gates (a mean over the channels, a sigmoid broadcast over them) and self-attention's
reshapes are not element-wise, and traced through they would be mapped wrongly.

A pruned run records ``pruned`` in its config (the amount, the importance and the source
checkpoint); its channel counts are the shapes of its weights. `shrink_to` gives a network
built from the config those shapes before the weights are loaded, which is how every command
that reads a checkpoint rebuilds a pruned one from the file alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from seglab.errors import SeglabError
from seglab.extras import require
from seglab.models import CBAM, PixelSelfAttention, SCSEAttention

#: The config key of a pruned run: ``{amount, importance, source}``.
PRUNED_KEY = "pruned"
#: Values of ``importance``: the norm of a channel's weights (summed over its group) that ranks it.
IMPORTANCES = {"l1": 1, "l2": 2}
#: Per attention block: the convolutions that read its channels, and those that write them.
_ATTENTION_CHANNELS: dict[type[nn.Module], tuple[tuple[str, ...], tuple[str, ...]]] = {
    SCSEAttention: (("channel_gate.0", "spatial_gate"), ("channel_gate.2",)),
    CBAM: (("channel_mlp.0",), ("channel_mlp.2",)),
    PixelSelfAttention: (("query", "key", "value", "proj"), ("value", "proj")),
}


def require_torch_pruning(why: str) -> Any:
    """The ``torch_pruning`` module, or a MissingExtraError saying what to install for ``why``."""
    return require("torch_pruning", why)


def check_amount(amount: Any) -> float:
    """``amount`` as a share of channels strictly between 0 and 1, else a SeglabError."""
    if isinstance(amount, bool) or not isinstance(amount, int | float) or not 0 < amount < 1:
        raise SeglabError(
            f"amount={amount} must be a share of channels between 0 and 1 (exclusive), "
            "e.g. amount=0.25 removes a quarter of each layer's channels"
        )
    return float(amount)


def check_importance(importance: Any) -> int:
    """The norm degree of ``importance`` (l1, l2), else a SeglabError."""
    if importance not in IMPORTANCES:
        raise SeglabError(f"importance={importance} is not one of: {', '.join(IMPORTANCES)}")
    return IMPORTANCES[importance]


def _attention_pruner(torch_pruning: Any) -> Any:
    """A Torch-Pruning layer rule for seglab's attention blocks: one block is one node whose
    input and output channels are the same channels, removed from each of its convolutions
    that reads or writes them."""

    class AttentionPruner(torch_pruning.pruner.function.BasePruningFunc):
        TARGET_MODULES = tuple(_ATTENTION_CHANNELS)

        def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
            reading, writing = _ATTENTION_CHANNELS[type(layer)]
            for name in reading:
                torch_pruning.prune_conv_in_channels(layer.get_submodule(name), list(idxs))
            for name in writing:
                torch_pruning.prune_conv_out_channels(layer.get_submodule(name), list(idxs))
            return layer

        # the same channels in and out: an intra-layer dependency for Torch-Pruning
        prune_in_channels = prune_out_channels

        def get_out_channels(self, layer: nn.Module) -> int:
            reading, _ = _ATTENTION_CHANNELS[type(layer)]
            return layer.get_submodule(reading[0]).in_channels

        get_in_channels = get_out_channels

    return AttentionPruner()


def kept_layers(model: nn.Module) -> list[nn.Module]:
    """The layers whose output channels stay.

    - Every classifier (the head and the auxiliary heads), so the class count never changes.
    - Self-attention with several heads, whose channels must stay divisible by them.
    - Around max-unpooling (SegNet): the decoder map unpooled with an encoder feature's pooling
      indices pairs its channel i with that feature's channel i, a coupling the traced graph
      does not show (the indices are integers); the last convolutions of both keep theirs.
    """
    kept: list[nn.Module] = [model.get_submodule("head")]
    kept.extend(getattr(model, "aux_heads", []))
    kept.extend(
        module
        for module in model.modules()
        if isinstance(module, PixelSelfAttention) and module.heads > 1
    )
    decoder = getattr(model, "decoder", None)
    if getattr(decoder, "requires_indices", False):
        pooled = [*model.encoder.stages[:-1], decoder.bottleneck, *decoder.stages[:-1]]
        kept.extend(_last_conv(block) for block in pooled if _last_conv(block) is not None)
    return kept


def _last_conv(block: nn.Module) -> nn.Module | None:
    convs = [module for module in block.modules() if isinstance(module, nn.Conv2d)]
    return convs[-1] if convs else None


def prune_channels(
    model: nn.Module, amount: float, importance: str, example: torch.Tensor
) -> nn.Module:
    """Remove the weakest ``amount`` of the channels of every coupled group of ``model``, in
    place, tracing it on ``example`` (one input batch); returns ``model``."""
    torch_pruning = require_torch_pruning("seglab-prune")
    amount, degree = check_amount(amount), check_importance(importance)
    attention = _attention_pruner(torch_pruning)
    was_training = model.training
    model.eval()  # tracing runs a forward pass, which must not move BatchNorm statistics
    pruner = torch_pruning.pruner.MetaPruner(
        model,
        example,
        importance=torch_pruning.importance.MagnitudeImportance(p=degree),
        pruning_ratio=amount,
        ignored_layers=kept_layers(model),
        customized_pruners={kind: attention for kind in _ATTENTION_CHANNELS},
    )
    pruner.step()
    return model.train(was_training)


def shrink_to(model: nn.Module, state: Mapping[str, torch.Tensor]) -> nn.Module:
    """``model`` (built from a pruned run's config, so at its unpruned widths) with every
    parameter and buffer shaped as in ``state`` and the layers' channel counts to match, in
    place; the values are left for ``load_state_dict``. Returns ``model``."""
    for prefix, module in model.named_modules():
        changed = False
        for kind in ("_parameters", "_buffers"):
            tensors = getattr(module, kind)
            for name, tensor in tensors.items():
                key = f"{prefix}.{name}" if prefix else name
                if tensor is None or key not in state or state[key].shape == tensor.shape:
                    continue
                empty = torch.empty(state[key].shape, dtype=tensor.dtype, device=tensor.device)
                parameter = kind == "_parameters"
                tensors[name] = nn.Parameter(empty, tensor.requires_grad) if parameter else empty
                changed = True
        if changed:
            _update_channel_counts(module)
    return model


def _update_channel_counts(module: nn.Module) -> None:
    """The channel attributes of a layer whose weights were reshaped, read from the weights."""
    if isinstance(module, nn.modules.conv._ConvNd):
        # a convolution's weight is (out, in / groups, ...), a transposed one's (in, out / groups)
        first, second = (int(size) for size in module.weight.shape[:2])
        if module.groups > 1 and module.groups == module.in_channels == module.out_channels:
            module.groups = first  # depthwise: one group per channel
        if module.transposed:
            module.in_channels, module.out_channels = first, second * module.groups
        else:
            module.out_channels, module.in_channels = first, second * module.groups
    elif isinstance(module, nn.modules.batchnorm._NormBase):
        module.num_features = _channels(module)
    elif isinstance(module, nn.GroupNorm):
        module.num_channels = _channels(module)
    elif isinstance(module, nn.Linear):
        module.out_features, module.in_features = module.weight.shape
    elif isinstance(module, nn.LayerNorm):
        module.normalized_shape = (_channels(module),)


def _channels(module: nn.Module) -> int:
    """Channels of a norm layer, from its affine weight or else its running mean."""
    tensor = module.weight if getattr(module, "weight", None) is not None else module.running_mean
    return int(tensor.shape[0])


def parameter_count(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())
