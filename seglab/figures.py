"""The images a validation epoch shows in TensorBoard: the prediction grid, the confusion matrix.

Both are read in a browser card about a thousand pixels wide, so both are drawn for it: the
grid's tiles are scaled to be read (small images enlarged by a whole factor, so that a pixel
stays a sharp square; large ones reduced to fit the card), its columns are headed and its
colours named in a legend; the confusion matrix names every class in full, says which axis is
the truth, and grows with the class count.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from matplotlib import font_manager
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from seglab.models.layers import resize

RGB = tuple[int, int, int]

#: The grid's columns, left to right.
COLUMNS = ("image", "truth", "prediction", "errors")
#: The error map: pixels whose prediction differs from the truth, and those where it agrees.
ERROR_COLOUR: RGB = (255, 0, 0)
AGREE_COLOUR: RGB = (210, 210, 210)
# void is drawn in the first of these that no class has, so that it never reads as a class
VOID_CANDIDATES: tuple[RGB, ...] = ((0, 0, 0), (255, 255, 255), (128, 128, 128))
BACKGROUND: RGB = (255, 255, 255)
INK: RGB = (0, 0, 0)
GAP = 4  # pixels between tiles and around the grid
# text is a fixed share of the grid's width, at least 14 pixels: TensorBoard shrinks an image
# to its card's width (~350 pixels by default) and the text with it, so a wide grid needs
# larger letters to stay readable there
MIN_FONT_PX = 14
WIDTH_PER_FONT_PX = 32


def spread_indices(count: int, length: int) -> list[int]:
    """``count`` indices spread evenly over ``range(length)``, each in the middle of its share.

    Consecutive frames of a video split (CamVid's val is one drive) show one scene; spread
    ones show the split. Every index when ``count >= length``.
    """
    if count >= length:
        return list(range(length))
    return [(2 * i + 1) * length // (2 * count) for i in range(count)]


def void_colour(palette: Sequence[Sequence[int]]) -> RGB:
    """The colour void is drawn in: black, unless a class is black."""
    colours = {tuple(int(v) for v in rgb) for rgb in palette}
    return next(c for c in VOID_CANDIDATES if c not in colours)


def colourize(mask: Tensor, palette: Sequence[Sequence[int]], ignore_index: int) -> Tensor:
    """Class-index mask ``(H, W)`` to an RGB float image ``(3, H, W)``; void in `void_colour`."""
    lut = torch.tensor(palette, dtype=torch.float32) / 255.0
    valid = (mask >= 0) & (mask < len(palette)) & (mask != ignore_index)
    rgb = lut[torch.where(valid, mask, 0)]
    rgb[~valid] = torch.tensor(void_colour(palette), dtype=torch.float32) / 255.0
    return rgb.permute(2, 0, 1)


def error_map(
    truth: Tensor, prediction: Tensor, palette: Sequence[Sequence[int]], ignore_index: int
) -> Tensor:
    """``(3, H, W)`` float image: `ERROR_COLOUR` where the prediction differs from the truth,
    `AGREE_COLOUR` where it agrees, void (which no prediction can match) as in the truth tile."""
    void = (truth < 0) | (truth >= len(palette)) | (truth == ignore_index)
    colour = torch.where(
        (truth != prediction)[..., None],
        torch.tensor(ERROR_COLOUR, dtype=torch.float32),
        torch.tensor(AGREE_COLOUR, dtype=torch.float32),
    )
    colour[void] = torch.tensor(void_colour(palette), dtype=torch.float32)
    return colour.permute(2, 0, 1) / 255.0


def tile_size(height: int, width: int, min_side: int, max_width: int) -> tuple[int, int]:
    """The ``(height, width)`` an image is drawn at in the grid.

    Wider than ``max_width``: reduced to it, the aspect kept. Otherwise enlarged by the
    smallest whole factor that brings its longer side to ``min_side`` (a 32x32 image to
    128x128), as far as ``max_width`` allows; a whole factor keeps every pixel a sharp square.
    """
    if width > max_width:
        return max(1, round(height * max_width / width)), max_width
    factor = min(math.ceil(min_side / max(height, width)), max_width // width)
    return height * max(factor, 1), width * max(factor, 1)


def scale_tile(tile: Tensor, size: tuple[int, int], smooth: bool) -> Tensor:
    """A ``(3, H, W)`` tile at ``size``: nearest-neighbour for masks and for every enlargement
    (class colours stay exact, pixels sharp); a photo being reduced is antialiased."""
    if tuple(tile.shape[-2:]) == size:
        return tile
    if smooth and size[1] < tile.shape[-1]:
        return resize(tile[None], size, antialias=True)[0].clamp(0.0, 1.0)
    return F.interpolate(tile[None], size=size, mode="nearest-exact")[0]


@functools.cache
def _font(size: int) -> ImageFont.FreeTypeFont:
    """DejaVu Sans, which matplotlib ships, so the text looks the same on every machine."""
    return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)


def _to_pil(tile: Tensor) -> Image.Image:
    pixels = (tile.clamp(0.0, 1.0) * 255).round().to(torch.uint8).permute(1, 2, 0)
    return Image.fromarray(pixels.contiguous().numpy(), "RGB")


def _legend_lines(
    classes: Sequence[str], palette: Sequence[Sequence[int]], void: RGB
) -> list[list[tuple[RGB | None, str]]]:
    """The legend's entries, a line each: the classes and void, then the error map's colours
    (an entry without a colour is a caption)."""
    entries: list[tuple[RGB | None, str]] = [
        (tuple(int(v) for v in rgb), name)  # type: ignore[misc]
        for name, rgb in zip(classes, palette, strict=True)
    ]
    entries.append((void, "void"))
    errors: list[tuple[RGB | None, str]] = [
        (None, "errors:"),
        (ERROR_COLOUR, "prediction differs"),
        (AGREE_COLOUR, "agrees"),
    ]
    return [entries, errors]


def _draw_legend(
    draw: ImageDraw.ImageDraw | None,
    lines: list[list[tuple[RGB | None, str]]],
    top: int,
    width: int,
    font_px: int,
) -> int:
    """Draw the legend's entries from ``top``, wrapping at ``width``, with swatches as tall as
    the letters; return its bottom. With ``draw`` None it only measures."""
    font = _font(font_px)
    swatch_px = font_px
    line_height = font_px + 6
    y = top
    for entries in lines:
        x = GAP
        for colour, label in entries:
            swatch = 0 if colour is None else swatch_px + font_px // 4
            entry_width = swatch + int(font.getlength(label)) + font_px
            if x > GAP and x + entry_width > width - GAP:
                x, y = GAP, y + line_height
            if draw is not None:
                if colour is not None:
                    end_x, end_y = x + swatch_px, y + swatch_px
                    draw.rectangle((x, y, end_x - 1, end_y - 1), fill=colour)
                    draw.rectangle((x - 1, y - 1, end_x, end_y), outline=(90, 90, 90))
                draw.text((x + swatch, y + swatch_px // 2), label, fill=INK, font=font, anchor="lm")
            x += entry_width
        y += line_height
    return y


def draw_prediction_grid(
    samples: Sequence[tuple[Tensor, Tensor, Tensor]],
    classes: Sequence[str],
    palette: Sequence[Sequence[int]],
    ignore_index: int,
    min_tile: int = 128,
    max_width: int = 1100,
) -> Image.Image:
    """One row per sample of image / truth / prediction / errors under column headings, and a
    legend of the class colours below.

    Args:
        samples: ``(image, truth, prediction)``: a ``(3, H, W)`` image in [0, 1] and two
            ``(H, W)`` class-index masks of the same size.
        classes: class names, index ``i`` naming class ``i``.
        palette: one RGB triple (0-255) per class.
        ignore_index: the void value of the masks.
        min_tile: small images are enlarged by a whole factor until their longer side has at
            least this many pixels (see `tile_size`).
        max_width: the grid's widest, in pixels; wider images are reduced to fit.
    """
    columns = len(COLUMNS)
    max_tile = max(1, (max_width - (columns + 1) * GAP) // columns)
    rows = []
    for image, truth, prediction in samples:
        size = tile_size(*truth.shape[-2:], min_tile, max_tile)
        tiles = (
            scale_tile(image, size, smooth=True),
            scale_tile(colourize(truth, palette, ignore_index), size, smooth=False),
            scale_tile(colourize(prediction, palette, ignore_index), size, smooth=False),
            scale_tile(error_map(truth, prediction, palette, ignore_index), size, smooth=False),
        )
        rows.append([_to_pil(tile) for tile in tiles])
    column_width = max(row[0].width for row in rows)
    width = GAP + columns * (column_width + GAP)
    font_px = max(MIN_FONT_PX, round(width / WIDTH_PER_FONT_PX))
    header = font_px + 2 * GAP
    legend = _legend_lines(classes, palette, void_colour(palette))
    tiles_bottom = header + sum(row[0].height + GAP for row in rows)
    height = _draw_legend(None, legend, tiles_bottom + GAP, width, font_px) + GAP
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for c, title in enumerate(COLUMNS):
        centre = GAP + c * (column_width + GAP) + column_width // 2
        draw.text((centre, header // 2), title, fill=INK, font=_font(font_px), anchor="mm")
    y = header
    for row in rows:
        for c, tile in enumerate(row):
            canvas.paste(tile, (GAP + c * (column_width + GAP), y))
        y += row[0].height + GAP
    _draw_legend(draw, legend, tiles_bottom + GAP, width, font_px)
    return canvas


def confusion_matrix_figure(confmat: Tensor, classes: Sequence[str]) -> Figure:
    """The row-normalised confusion matrix (rows: true class, columns: predicted class).

    The figure grows with the class count and its font shrinks, down to 8 pt: the cells of 11
    classes are about 45 pixels wide, those of 30 about 36. A cell shows its percentage where
    the number fits, and is blank below 0.5 %. A Matplotlib ``Figure`` made directly, not
    through pyplot, so that nothing is registered globally and it is freed with its last
    reference.
    """
    counts = confmat.double()
    totals = counts.sum(dim=1, keepdim=True)
    rates = torch.where(totals > 0, counts / totals.clamp(min=1), torch.zeros_like(counts))
    n = len(classes)
    font = min(11.0, max(8.0, 12.0 - n / 6))
    # a cell holds "100" in the font with room to spare, while the matrix stays ~11 inches
    cell = min(3.2 * font / 72, 11.0 / n)
    side = n * cell
    # room around the matrix for the names and the colour bar; the layout engine places them
    figure = Figure(figsize=(side + 3.0, side + 2.0), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    shown = axes.imshow(rates.numpy(), cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    axes.set_xticks(range(n), labels=list(classes), rotation=45, ha="right", rotation_mode="anchor")
    axes.set_yticks(range(n), labels=list(classes))
    axes.tick_params(labelsize=font)
    axes.set_xlabel("predicted", fontsize=font + 1)
    axes.set_ylabel("true", fontsize=font + 1)
    axes.set_title("% of each true class's pixels", fontsize=font + 1)
    if cell * 72 >= 2.2 * font:
        for i in range(n):
            for j in range(n):
                percent = round(100 * float(rates[i, j]))
                if percent > 0:
                    ink = "white" if percent > 50 else "black"
                    axes.text(
                        j, i, str(percent), ha="center", va="center", color=ink, fontsize=font
                    )
    colorbar = figure.colorbar(shown, ax=axes, fraction=0.04, pad=0.02)
    colorbar.ax.tick_params(labelsize=font)
    return figure


def render_figure(figure: Figure) -> Image.Image:
    """A figure as an RGB image, trimmed to what it draws; the figure is cleared afterwards."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight", pad_inches=0.1, facecolor="white")
    figure.clear()
    buffer.seek(0)
    with Image.open(buffer) as image:
        return image.convert("RGB")


def draw_confusion_matrix(confmat: Tensor, classes: Sequence[str]) -> Image.Image:
    """`confusion_matrix_figure` rendered to an image."""
    return render_figure(confusion_matrix_figure(confmat, classes))
