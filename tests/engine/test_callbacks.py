"""The TensorBoard callbacks' options and config flattening, on hand-built inputs (the images
they draw: tests/visualization/test_figures.py)."""

from __future__ import annotations

import pytest

from seglab.engine.callbacks import PredictionGrid, flatten_config, hparam_values


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


def test_hparam_values_name_swapped_groups_by_option_and_leave_out_plumbing() -> None:
    config = {
        "model": {
            "_target_": "seglab.models.Segmenter",
            "decoder": {"_target_": "seglab.models.FPNDecoder", "channels": 32},
            "blocks": [{"_target_": "my.Block", "_convert_": "all"}],
            "head": {"_target_": "my.heads.Head", "_convert_": "all"},
        },
        "data": {
            "root": "/data/camvid",
            "cache": "/runs/a/cache",
            "loader": {
                "drop_last": False,
                # how fast a run loads its data: no column
                "num_workers": 4,
                "pin_memory": True,
                "persistent_workers": True,
            },
            "cache_dir": "/home/me/.cache/seglab",
        },
        "trainer": {"max_epochs": 3, "enable_progress_bar": False, "log_every_n_steps": 1},
        "callbacks": {"grid": {"_target_": "seglab.engine.callbacks.PredictionGrid"}},
        "paths": {"output_dir": "/runs/a"},
        "seed": 3,
    }
    choices = {"model": "segmenter", "model/decoder": "fpn", "hydra/launcher": "basic"}
    choices |= {"callbacks": "default"}
    assert hparam_values(config, choices) == {
        "model": "segmenter",
        "model/decoder": "fpn",
        "model.decoder.channels": 32,
        "model.blocks": "[{'_target_': 'my.Block', '_convert_': 'all'}]",
        "model.head._target_": "Head",
        "data.root": "/data/camvid",
        "data.loader.drop_last": False,
        "trainer.max_epochs": 3,
        "seed": 3,
    }
