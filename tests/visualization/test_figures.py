"""The prediction grid and the confusion matrix TensorBoard shows, on hand-built inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.text import Text
from PIL import Image

from seglab.visualization.figures import (
    AGREE_COLOUR,
    CARD_WIDTH_PX,
    ERROR_COLOUR,
    colourize,
    confusion_matrix_figure,
    draw_prediction_grid,
    error_map,
    render_figure,
    scale_tile,
    spread_indices,
    tile_size,
)

PALETTE = [[255, 0, 0], [0, 0, 255]]


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def _count(pixels: np.ndarray, colour: list[int] | tuple[int, ...]) -> int:
    return int((pixels == np.array(colour, dtype=np.uint8)).all(axis=-1).sum())


def test_colourize_maps_classes_to_palette_and_void_to_black() -> None:
    mask = torch.tensor([[0, 1], [255, 1]])
    rgb = colourize(mask, palette=PALETTE, ignore_index=255)
    assert rgb.shape == (3, 2, 2)
    assert rgb[:, 0, 0].tolist() == [1.0, 0.0, 0.0]
    assert rgb[:, 0, 1].tolist() == [0.0, 0.0, 1.0]
    assert rgb[:, 1, 0].tolist() == [0.0, 0.0, 0.0]


def test_void_is_not_drawn_in_a_class_colour() -> None:
    # the synthetic data's background class is black: void becomes white
    rgb = colourize(torch.tensor([[0, 255]]), palette=[[0, 0, 0], [0, 0, 255]], ignore_index=255)
    assert rgb[:, 0, 0].tolist() == [0.0, 0.0, 0.0]
    assert rgb[:, 0, 1].tolist() == [1.0, 1.0, 1.0]


def test_error_map_marks_exactly_the_pixels_that_differ() -> None:
    truth = torch.tensor([[0, 1, 1], [255, 0, 1]])
    prediction = torch.tensor([[0, 0, 1], [1, 1, 1]])
    rgb = (error_map(truth, prediction, PALETTE, ignore_index=255) * 255).round()
    colours = [[tuple(int(v) for v in rgb[:, i, j]) for j in range(3)] for i in range(2)]
    e, a, void = ERROR_COLOUR, AGREE_COLOUR, (0, 0, 0)
    assert colours == [[a, e, a], [void, e, a]]


def test_spread_indices_cover_the_split_evenly() -> None:
    indices = spread_indices(4, 101)
    assert indices == [12, 37, 63, 88]
    assert spread_indices(5, 3) == [0, 1, 2]
    assert len(set(spread_indices(50, 101))) == 50


def test_small_tiles_are_enlarged_by_a_whole_factor_with_nearest_neighbour() -> None:
    size = tile_size(32, 32, min_side=128, max_width=270)
    assert size == (128, 128)
    tile = torch.rand(3, 32, 32)
    big = scale_tile(tile, size, smooth=True)
    # every source pixel becomes a 4x4 block of its own value
    assert torch.equal(big, tile.repeat_interleave(4, dim=1).repeat_interleave(4, dim=2))
    # the factor stops where the width limit is
    assert tile_size(32, 48, min_side=128, max_width=100) == (64, 96)


def test_large_tiles_are_reduced_to_the_column_width() -> None:
    size = tile_size(360, 480, min_side=128, max_width=270)
    assert size == (202, 270)
    mask = torch.randint(0, 2, (360, 480))
    reduced = scale_tile(colourize(mask, PALETTE, 255), size, smooth=False)
    assert reduced.shape == (3, 202, 270)
    # masks keep their exact class colours when reduced
    colours = {tuple(c) for c in reduced.permute(1, 2, 0).reshape(-1, 3).unique(dim=0).tolist()}
    assert colours == {(1.0, 0.0, 0.0), (0.0, 0.0, 1.0)}


def _sample(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A green image (`GREEN`) whose truth and prediction are all void: no class colour in
    the tiles."""
    void = torch.full((height, width), 255)
    image = torch.tensor([0.2, 0.6, 0.4])[:, None, None].expand(3, height, width)
    return image, void, void


GREEN = (51, 153, 102)


def _green_rows(pixels: np.ndarray) -> np.ndarray:
    return (pixels == np.array(GREEN, dtype=np.uint8)).all(axis=-1).any(axis=1)


def test_grid_fits_a_card_and_enlarges_small_samples() -> None:
    classes, palette = ["a", "b"], PALETTE
    small = draw_prediction_grid([_sample(32, 32)] * 2, classes, palette, 255)
    large = draw_prediction_grid([_sample(360, 480)] * 2, classes, palette, 255, max_width=1100)
    assert 4 * 128 < small.width < 4 * 128 + 40
    assert 1000 < large.width <= 1100
    # two rows of image tiles, 128 pixels tall each for the small samples
    assert _green_rows(_pixels(small)).sum() == 2 * 128


def test_grid_has_column_headings_and_a_legend_in_the_palette_colours() -> None:
    palette = [[230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48]]
    classes = ["background", "ellipse", "rectangle", "triangle"]
    grid = draw_prediction_grid([_sample(32, 32)], classes, palette, 255)
    pixels = _pixels(grid)
    # each palette colour only in its legend swatch, which is at least 12x12 pixels
    for rgb in palette:
        assert _count(pixels, rgb) >= 144, rgb
    # above the tiles, each of the four columns has a heading (dark text pixels)
    first_tile_row = int(np.argmax(_green_rows(pixels)))
    assert first_tile_row > 10
    header = pixels[:first_tile_row].sum(axis=-1) < 200
    quarters = np.array_split(header, 4, axis=1)
    assert all(quarter.any() for quarter in quarters)
    # 30 classes need more legend lines than 4
    many = draw_prediction_grid(
        [_sample(32, 32)],
        [f"class {i}" for i in range(30)],
        [[i * 8, 255 - i * 8, 100] for i in range(30)],
        255,
    )
    assert many.width == grid.width and many.height > grid.height + 40


CAMVID = [
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree",
    "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist",
]  # fmt: skip
MANY = [f"class name {i}" for i in range(30)]


def _card_font_px(figure: Figure) -> tuple[float, Image.Image]:
    """The smallest text of ``figure``, in pixels of a `CARD_WIDTH_PX`-wide TensorBoard card
    (which scales the image to its width), and the image."""
    sizes = [text.get_fontsize() for text in figure.findobj(Text) if text.get_text()]
    pixels = min(sizes) * figure.dpi / 72
    image = render_figure(figure)
    return pixels * CARD_WIDTH_PX / image.width, image


@pytest.mark.parametrize(("classes", "least_px"), [(CAMVID, 10.0), (MANY, 7.5)])
def test_confusion_matrix_text_is_legible_in_a_tensorboard_card(
    classes: list[str], least_px: float
) -> None:
    n = len(classes)
    confmat = torch.eye(n, dtype=torch.int64) * 90 + 1
    figure = confusion_matrix_figure(confmat, classes)
    axes = figure.axes[0]
    # every class in full on both axes, the axes say which is the truth
    assert [label.get_text() for label in axes.get_xticklabels()] == classes
    assert [label.get_text() for label in axes.get_yticklabels()] == classes
    assert axes.get_xlabel() == "predicted" and axes.get_ylabel() == "true"
    card_px, image = _card_font_px(figure)
    assert card_px >= least_px
    # sharp where a screen has two pixels per card pixel, and not much more
    assert 2 * CARD_WIDTH_PX <= image.width <= 3 * CARD_WIDTH_PX


def test_confusion_matrix_writes_every_share_while_the_numbers_stay_legible() -> None:
    confmat = torch.eye(11, dtype=torch.int64) * 90 + 1
    axes = confusion_matrix_figure(confmat, CAMVID).axes[0]
    # 91 of 101 on the diagonal, 1 of 101 everywhere else
    assert sorted({text.get_text() for text in axes.texts}) == ["1", "90"]
    assert len(axes.texts) == 11 * 11


def test_many_classes_show_the_correct_share_beside_the_matrix_instead() -> None:
    confmat = torch.eye(30, dtype=torch.int64) * 90 + 1
    confmat[3] = 0  # a class absent from the truth has no share
    figure = confusion_matrix_figure(confmat, MANY)
    axes = figure.axes[0]
    assert not axes.texts
    diagonal = next(child for child in axes.child_axes if child.get_ylabel() == "% correct")
    correct = ["-" if i == 3 else str(round(100 * 91 / 120)) for i in range(30)]
    assert [label.get_text() for label in diagonal.get_yticklabels()] == correct
    # the colours have a scale
    assert len(figure.axes) == 2


def test_confusion_matrix_is_row_normalised() -> None:
    # the last class never occurs in the truth: its row stays empty
    confmat = torch.tensor([[3, 1, 0], [1, 1, 0], [0, 0, 0]])
    axes = confusion_matrix_figure(confmat, ["road", "sky", "car"]).axes[0]
    rates = [[0.75, 0.25, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 0.0]]
    assert axes.images[0].get_array().tolist() == rates
    assert sorted(text.get_text() for text in axes.texts) == ["25", "50", "50", "75"]
