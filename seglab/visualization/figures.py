"""The images a validation epoch shows in TensorBoard: the prediction grid, the confusion matrix.

Both are read in TensorBoard's IMAGES card, which scales an image to 350 pixels wide, so both
are drawn for it: the grid's tiles are scaled to be read (small images enlarged by a whole
factor, so that a pixel stays a sharp square; large ones reduced to fit), its columns are headed
and its colours named in a legend, its text growing with its width; the confusion matrix names
every class in full, says which axis is the truth, and is laid out in ems of its one font so
that its letters keep a legible size in the card.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from matplotlib import font_manager
from matplotlib.colors import PowerNorm
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
#: The width, in pixels, TensorBoard's IMAGES tab scales an image to.
CARD_WIDTH_PX = 350
#: The confusion matrix's one font size, and the resolution it is drawn at: a 22-pixel em, so
#: that at 11 classes and more the image is two to three times the card's width and stays sharp
#: on a screen with two pixels per card pixel.
MATRIX_FONT_PT = 10.0
MATRIX_DPI = 160
#: The smallest letters, in pixels of the card, for which the matrix writes a number in every
#: cell; the cells' pitch, in ems, with numbers and without; the ems the matrix takes beside
#: its names' width ("true", ticks, margins).
MIN_CARD_FONT_PX = 9.5
NUMBERED_PITCH_EM = 2.2
PLAIN_PITCH_EM = 1.1
SIDE_EM = 2.5


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


def _names_em(classes: Sequence[str]) -> float:
    """The width of the longest class name, in ems of `MATRIX_FONT_PT` DejaVu Sans."""
    font = _font(100)
    return max((font.getlength(name) for name in classes), default=0.0) / 100


def confusion_matrix_layout(classes: Sequence[str]) -> tuple[bool, float]:
    """Whether the matrix's cells hold their percentages, and the cells' pitch in ems.

    TensorBoard shows the image `CARD_WIDTH_PX` wide, so what decides whether text is legible
    there is how many ems the image is wide: with a number in every cell (a pitch of
    `NUMBERED_PITCH_EM`) the image stays narrow enough for `MIN_CARD_FONT_PX` letters up to
    about a dozen classes. Beyond that the cells shrink to a line of text (`PLAIN_PITCH_EM`,
    column names upright), show their share by colour alone, and the correct share of each
    class (the diagonal) is written in a column at the right.
    """
    width_em = _names_em(classes) + SIDE_EM + len(classes) * NUMBERED_PITCH_EM + 1.0
    numbered = CARD_WIDTH_PX / width_em >= MIN_CARD_FONT_PX
    return numbered, NUMBERED_PITCH_EM if numbered else PLAIN_PITCH_EM


def confusion_matrix_figure(confmat: Tensor, classes: Sequence[str]) -> Figure:
    """The row-normalised confusion matrix (rows: true class, columns: predicted class), drawn
    to be read where TensorBoard first shows it: scaled to a card `CARD_WIDTH_PX` wide.

    Every size is in ems of one font (`MATRIX_FONT_PT` at `MATRIX_DPI`), so the image's width
    in ems, set by the longest class name and the class count, fixes the letters' size in the
    card (see `confusion_matrix_layout`). Up to about a dozen classes every cell of 1 % or more
    shows its percentage; with more, the colour (light: none, dark: all of the true class's
    pixels, as the bar below says) and a column of each class's correct percentage. No name is
    abbreviated. A Matplotlib ``Figure`` made directly, not through pyplot, so that nothing is
    registered globally and it is freed with its last reference.
    """
    counts = confmat.double()
    totals = counts.sum(dim=1, keepdim=True)
    rates = torch.where(totals > 0, counts / totals.clamp(min=1), torch.zeros_like(counts))
    percents = (100 * rates).round().to(torch.int64)
    n = len(classes)
    numbered, pitch = confusion_matrix_layout(classes)
    em = MATRIX_FONT_PT / 72  # inches
    names = _names_em(classes)
    # room, in ems, on each side of the matrix: names and "true" at the left, the title above,
    # the (slanted or upright) names and "predicted" below, the diagonal's column at the right
    left = names + SIDE_EM
    right = 1.0 if numbered else 3.0
    top = 2.5
    bottom = names * (0.75 if numbered else 1.0) + 3.0 + (0.0 if numbered else 2.0)
    side = n * pitch
    width, height = left + side + right, top + side + bottom
    figure = Figure(figsize=(width * em, height * em), dpi=MATRIX_DPI)
    axes = figure.add_axes((left / width, bottom / height, side / width, side / height))
    # a square-root scale: a confusion of a few percent is already a visible tint
    norm = PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0)
    shown = axes.imshow(
        rates.numpy(), cmap="Blues", norm=norm, interpolation="nearest", aspect="auto"
    )
    font = MATRIX_FONT_PT
    if numbered:
        axes.set_xticks(
            range(n), labels=list(classes), rotation=45, ha="right", rotation_mode="anchor"
        )
    else:
        axes.set_xticks(
            range(n),
            labels=list(classes),
            rotation=90,
            ha="right",
            va="center",
            rotation_mode="anchor",
        )
    axes.set_yticks(range(n), labels=list(classes))
    axes.tick_params(labelsize=font, length=3, pad=2)
    axes.set_xlabel("predicted", fontsize=font)
    axes.set_ylabel("true", fontsize=font, labelpad=2)
    axes.set_title("% of each true class's pixels", fontsize=font)
    if numbered:
        for i in range(n):
            for j in range(n):
                percent = int(percents[i, j])
                if percent > 0:
                    ink = "white" if norm(percent / 100) > 0.65 else "black"
                    axes.text(
                        j, i, str(percent), ha="center", va="center", color=ink, fontsize=font
                    )
    else:
        diagonal = axes.secondary_yaxis("right")
        # a class absent from the truth has no share to show
        correct = [str(int(percents[i, i])) if totals[i] > 0 else "-" for i in range(n)]
        diagonal.set_yticks(range(n), labels=correct)
        diagonal.tick_params(labelsize=font, length=0, pad=3)
        diagonal.set_ylabel("% correct", fontsize=font, labelpad=2)
        bar = figure.add_axes((left / width, 1.3 / height, min(side, 12.0) / width, 0.7 / height))
        colorbar = figure.colorbar(shown, cax=bar, orientation="horizontal")
        colorbar.set_ticks([0.0, 0.1, 0.5, 1.0], labels=["0%", "10%", "50%", "100%"])
        colorbar.ax.tick_params(labelsize=font, length=2, pad=1)
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
