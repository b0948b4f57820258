"""The TensorBoard callbacks' options and config flattening, on hand-built inputs (the images
they draw: tests/test_figures.py)."""

from __future__ import annotations

import pytest

from seglab.callbacks import PredictionGrid, flatten_config


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"num_samples": 0}, "num_samples"),
        ({"min_tile": 0}, "min_tile"),
        ({"max_width": 10}, "max_width"),
    ],
)
def test_prediction_grid_names_a_bad_option(options: dict[str, int], key: str) -> None:
    with pytest.raises(ValueError, match=rf"callbacks\.prediction_grid\.{key}="):
        PredictionGrid(**options)


def test_flatten_config_gives_dotted_scalar_keys() -> None:
    flat = flatten_config(
        {"optimizer": {"lr": 0.1, "betas": [0.9, 0.99]}, "seed": 3, "x": None, "y": float("nan")}
    )
    assert flat == {
        "optimizer.lr": 0.1,
        "optimizer.betas": "[0.9, 0.99]",
        "seed": 3,
        "x": "None",
        "y": "nan",
    }
