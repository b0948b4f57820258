"""The TensorBoard drawing helpers, on hand-built inputs."""

from __future__ import annotations

import torch

from seglab.callbacks import colourize, draw_confusion_matrix, flatten_config


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
