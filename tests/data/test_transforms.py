"""Joint transforms keep masks aligned with images, invent no class and keep void void."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision import tv_tensors

from seglab.data.transforms import ResizeImage, eval_transform, resize_pair, train_transform

VOID = 255
# vertices of a convex set (red, green, blue, white and black for void): no blend of some of
# them equals another, so a pixel of exactly one of these colours saw only that class
COLOURS = torch.tensor(
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]
)


def scene(blocks: torch.Tensor, cell: int) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
    """A mask of ``cell``-sized blocks of class values (4 is void) and the image it colours."""
    values = blocks.repeat_interleave(cell, 0).repeat_interleave(cell, 1)
    image = COLOURS[values].permute(2, 0, 1)
    mask = torch.where(values == 4, VOID, values)
    return tv_tensors.Image(image), tv_tensors.Mask(mask)


def decode(image: torch.Tensor) -> torch.Tensor:
    """Class of every pixel whose colour is exactly one class colour; -1 for blends."""
    match = (image.permute(1, 2, 0)[:, :, None, :] - COLOURS).abs().amax(-1) < 1e-6
    index = torch.where(match.any(-1), match.float().argmax(-1), -1)
    return torch.where(index == 4, VOID, index)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**31 - 1),
    blocks=st.integers(2, 5),
    cell=st.integers(2, 6),
    low=st.floats(0.3, 1.5),
    spread=st.floats(0.0, 1.5),
    crop=st.tuples(st.integers(4, 40), st.integers(4, 40)),
    hflip=st.sampled_from([0.0, 0.5, 1.0]),
    vflip=st.sampled_from([0.0, 0.5, 1.0]),
)
def test_random_transforms_keep_masks_aligned(
    seed: int,
    blocks: int,
    cell: int,
    low: float,
    spread: float,
    crop: tuple[int, int],
    hflip: float,
    vflip: float,
) -> None:
    generator = torch.Generator().manual_seed(seed)
    image, mask = scene(torch.randint(0, 5, (blocks, blocks), generator=generator), cell)
    transform = train_transform(
        mean=[0.0] * 3,
        std=[1.0] * 3,
        ignore_index=VOID,
        crop_size=crop,
        scale_range=[low, low + spread],
        hflip=hflip,
        vflip=vflip,
    )
    torch.manual_seed(seed)
    out_image, out_mask = transform(image, mask)
    assert out_mask.shape == out_image.shape[-2:] == crop
    assert out_mask.dtype == torch.int64
    # no class the input did not have (padding adds only void)
    assert set(out_mask.unique().tolist()) <= set(mask.unique().tolist()) | {VOID}
    seen = decode(out_image)
    pure = seen >= 0
    # where the image shows one class's colour alone, the mask holds that class (void: void)
    assert torch.equal(out_mask[pure], seen[pure])
    if low >= 1.0:
        # upscaled, every block keeps a pure interior at least a pixel wide, so the check
        # above is never vacuous
        assert pure.any()


def test_masks_are_resized_with_nearest_neighbour() -> None:
    mask = tv_tensors.Mask(torch.tensor([[0, 3], [7, 255]]))
    resized = resize_pair(mask, [4, 4])
    assert resized.tolist() == [[0, 0, 3, 3], [0, 0, 3, 3], [7, 7, 255, 255], [7, 7, 255, 255]]
    assert set(resize_pair(mask, [3, 5]).unique().tolist()) <= {0, 3, 7, 255}


def test_eval_transform_resizes_the_image_only() -> None:
    image = tv_tensors.Image(torch.randint(0, 256, (3, 20, 30), dtype=torch.uint8))
    mask = tv_tensors.Mask(torch.zeros(20, 30, dtype=torch.int64))
    out_image, out_mask = eval_transform([0.5] * 3, [0.25] * 3, scale=0.5)(image, mask)
    assert out_image.shape == (3, 10, 15) and out_image.dtype == torch.float32
    assert out_mask.shape == (20, 30) and torch.equal(out_mask, mask)


def test_normalisation_uses_mean_and_std() -> None:
    image = tv_tensors.Image(torch.full((3, 2, 2), 255, dtype=torch.uint8))
    mask = tv_tensors.Mask(torch.zeros(2, 2, dtype=torch.int64))
    out_image, _ = eval_transform([0.5, 0.0, 1.0], [0.5, 1.0, 2.0])(image, mask)
    assert out_image[:, 0, 0].tolist() == pytest.approx([1.0, 1.0, 0.0])


def test_colour_jitter_leaves_masks_alone() -> None:
    image, mask = scene(torch.tensor([[0, 1], [2, 4]]), 4)
    transform = train_transform(
        [0.0] * 3, [1.0] * 3, VOID, hflip=0.0, color_jitter={"brightness": 0.5, "hue": 0.2}
    )
    _, out_mask = transform(tv_tensors.Image((image * 255).to(torch.uint8)), mask)
    assert torch.equal(out_mask, mask)


def test_invalid_options_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"data\.eval_scale=0"):
        ResizeImage(0)
    with pytest.raises(ValueError, match=r"scale_range=\[2\.0, 1\.0\]"):
        train_transform([0.0] * 3, [1.0] * 3, VOID, scale_range=[2.0, 1.0])
