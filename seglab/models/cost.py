"""What a model costs: its parameter count and the floating-point operations of one forward pass.

Every training run logs both (``model/params``, ``model/gflops``) and returns them with its
metrics, so that a search can trade accuracy against them; anything else that compares models
by size and compute (a compressed model against its original) counts them the same way here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

#: The metric names the costs are logged and returned under.
PARAMS = "model/params"
GFLOPS = "model/gflops"


def parameter_count(model: nn.Module) -> int:
    """Every parameter's elements, trainable or frozen (buffers such as BatchNorm's running
    statistics are not parameters)."""
    return sum(parameter.numel() for parameter in model.parameters())


def forward_flops(model: nn.Module, input_shape: Sequence[int]) -> int:
    """FLOPs of one forward pass of ``model`` in eval mode on an input of ``input_shape``
    (batch included), as ``torch.utils.flop_counter.FlopCounterMode`` counts them.

    A multiply-add counts as 2 FLOPs. Only the operations torch has a formula for count:
    convolutions (plain and transposed), matrix products and attention; biases, activations,
    normalisation, pooling, resampling and other elementwise work count nothing, being a small
    share of a convolutional network's. The input is zeros, so no random number is drawn and a
    seeded run stays as it was; the model is put back in the mode it was in.
    """
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None else torch.float32
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(tuple(input_shape), device=device, dtype=dtype))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def cost_metrics(model: nn.Module, input_shape: Sequence[int]) -> dict[str, float]:
    """``model/params`` and ``model/gflops`` (:func:`forward_flops` / 1e9) of ``model`` at
    ``input_shape``, as the metrics a run logs and a sweeper may optimise."""
    return {
        PARAMS: float(parameter_count(model)),
        GFLOPS: forward_flops(model, input_shape) / 1e9,
    }
