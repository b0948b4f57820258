"""The TensorBoard drawing helpers, on hand-built inputs."""

from __future__ import annotations

import torch

from seglab.callbacks import colourize, draw_confusion_matrix, flatten_config, hparam_values


def test_colourize_maps_classes_to_palette_and_void_to_black() -> None:
    mask = torch.tensor([[0, 1], [255, 1]])
    rgb = colourize(mask, palette=[[255, 0, 0], [0, 0, 255]], ignore_index=255)
    assert rgb.shape == (3, 2, 2)
    assert rgb[:, 0, 0].tolist() == [1.0, 0.0, 0.0]
    assert rgb[:, 0, 1].tolist() == [0.0, 0.0, 1.0]
    assert rgb[:, 1, 0].tolist() == [0.0, 0.0, 0.0]


def test_confusion_matrix_image_shades_by_row_rate() -> None:
    confmat = torch.tensor([[3, 1], [0, 0]])
    image = draw_confusion_matrix(confmat, ["road", "sky"], cell=20)
    margin = image.width - 2 * 20 - 4
    # cell (0, 0) holds 3/4 of its row, cell (0, 1) 1/4: the first is darker
    dark = image.getpixel((margin + 15, margin + 17))
    light = image.getpixel((20 + margin + 15, margin + 17))
    assert sum(dark) < sum(light)
    # an empty row (class never in the target) stays white
    assert image.getpixel((margin + 15, 20 + margin + 17)) == (255, 255, 255)


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
        "data": {"root": "/data/camvid", "pin_memory": False, "cache": "/runs/a/cache"},
        "callbacks": {"grid": {"_target_": "seglab.callbacks.PredictionGrid"}},
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
        "data.pin_memory": False,
        "seed": 3,
    }
