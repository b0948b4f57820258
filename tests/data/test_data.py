"""The datamodule base class and the built-in synthetic shapes dataset."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
from tiny import data_options, with_options
from torch import Tensor
from torch.utils.data import Dataset, RandomSampler

from seglab.data import SegmentationDataModule, SyntheticShapes, SyntheticShapesDataModule
from seglab.data.shapes import CLASSES, ELLIPSE, RECTANGLE, TRIANGLE, Shapes, render
from seglab.data.synthetic import ShapesOptions

SMALL = {"image_size": 32, "max_shapes": 3}
CONFIG = data_options("synthetic")
# what the base class needs besides the class metadata: conf/data/synthetic.yaml's values
BASE = {key: CONFIG[key] for key in ("mean", "std", "loader", "splits", "few_labels")}
BASE["in_channels"] = 3


def _datamodule(**overrides) -> SyntheticShapesDataModule:
    small = with_options(CONFIG, num_train=20, num_val=20, num_test=8, loader={"batch_size": 8})
    return SyntheticShapesDataModule(**with_options(small, **{**SMALL, **overrides}))


def _shapes(num_samples: int, split: str = "train", **overrides) -> SyntheticShapes:
    """Scenes of conf/data/synthetic.yaml's generator, ``overrides`` replacing some options."""
    values = {**CONFIG, **overrides}
    options = ShapesOptions(**{key: values[key] for key in ShapesOptions._fields})
    return SyntheticShapes(num_samples, split, options, values["mean"], values["std"])


def _one_shape(kind: int, size: float, aspect: float = 1.0, angle: float = 0.0) -> Tensor:
    """The mask of one shape centred in a 32x32 image."""
    shapes = Shapes(
        kind=torch.tensor([[kind]]),
        center=torch.tensor([[[16.0, 16.0]]]),
        size=torch.tensor([[size]]),
        aspect=torch.tensor([[aspect]]),
        angle=torch.tensor([[angle]]),
        colour=torch.ones(1, 1, 3),
    )
    return render(shapes, torch.zeros(1, 3, 32, 32))[1][0]


# --- generation ---------------------------------------------------------------------------


def test_same_seed_gives_identical_samples():
    a, b = _shapes(20, seed=3, **SMALL), _shapes(20, seed=3, **SMALL)
    assert torch.equal(a.images, b.images)
    assert torch.equal(a.masks, b.masks)


def test_different_seeds_give_different_samples():
    a, b = _shapes(20, seed=0, **SMALL), _shapes(20, seed=1, **SMALL)
    assert not torch.equal(a.masks, b.masks)
    assert not torch.equal(a.images, b.images)


def test_sample_does_not_depend_on_split_size():
    short, long = _shapes(5, **SMALL), _shapes(150, **SMALL)
    assert torch.equal(short.images, long.images[:5])
    assert torch.equal(short.masks, long.masks[:5])


def test_splits_share_no_sample():
    train = _shapes(40, split="train", **SMALL)
    val = _shapes(40, split="val", **SMALL)
    # Largest pixel difference between every train image and every val image.
    difference = (train.images[:, None] - val.images[None]).abs().flatten(2).amax(-1)
    assert difference.min() > 0.1


def test_items_have_documented_shapes_and_dtypes():
    dataset = _shapes(4, image_size=24)
    image, mask, name = dataset[1]
    assert len(dataset) == 4 and name == "synthetic train sample 1"
    assert image.shape == (3, 24, 24) and image.dtype == torch.float32
    assert mask.shape == (24, 24) and mask.dtype == torch.int64


def test_every_class_appears_and_masks_hold_class_indices():
    masks = _shapes(30, **SMALL).masks
    counts = torch.bincount(masks.flatten(), minlength=len(CLASSES))
    assert len(counts) == len(CLASSES)
    assert (counts > 0).all()
    assert masks.min() >= 0 and masks.max() < len(CLASSES)


def test_images_are_normalised_with_mean_and_std():
    raw = _shapes(6, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), **SMALL).images
    normalised = _shapes(6, mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.4), **SMALL).images
    assert raw.min() >= 0 and raw.max() <= 1
    expected = (raw - torch.tensor([0.5, 0.4, 0.3])[:, None, None]) / torch.tensor([0.2, 0.3, 0.4])[
        :, None, None
    ]
    torch.testing.assert_close(normalised, expected)


def test_noise_is_per_pixel_gaussian_of_the_given_std():
    options = {"mean": (0.0,) * 3, "std": (1.0,) * 3, "seed": 5, **SMALL}
    clean = _shapes(8, noise=0.0, **options)
    noisy = _shapes(8, noise=0.02, **options)
    assert torch.equal(clean.masks, noisy.masks)
    difference = noisy.images - clean.images
    inside = (clean.images > 0.1) & (clean.images < 0.9)  # away from clamping
    assert difference[inside].std().item() == pytest.approx(0.02, rel=0.1)


# --- shapes and occlusion, on hand-built scenes -------------------------------------------


def test_axis_aligned_square_covers_exactly_its_pixels():
    # A square of half-side 5 has the area of the disk of diameter 10 / sqrt(pi / 4).
    mask = _one_shape(RECTANGLE, size=10 / math.sqrt(math.pi / 4))
    expected = torch.zeros(32, 32, dtype=torch.int64)
    expected[11:21, 11:21] = RECTANGLE  # pixel centres 11.5 .. 20.5 are within 5 of 16
    assert torch.equal(mask, expected)


def test_disk_matches_the_distance_test():
    mask = _one_shape(ELLIPSE, size=14.0)
    centres = torch.arange(32) + 0.5
    distance2 = (centres[None, :] - 16) ** 2 + (centres[:, None] - 16) ** 2
    assert torch.equal(mask == ELLIPSE, distance2 <= 7.0**2)


def test_rotating_an_ellipse_by_a_quarter_turn_transposes_it():
    flat = _one_shape(ELLIPSE, size=16.0, aspect=0.5, angle=0.0)
    upright = _one_shape(ELLIPSE, size=16.0, aspect=0.5, angle=math.pi / 2)
    assert flat[16, 16 - 9] == ELLIPSE and flat[16 - 9, 16] == 0  # wide, not tall
    assert torch.equal(upright, flat.T)


def test_triangle_points_up_at_angle_zero():
    size = 16.0
    circumradius = size / 2 * math.sqrt(4 * math.pi / (3 * math.sqrt(3)))
    mask = _one_shape(TRIANGLE, size=size)
    column = mask[:, 16]
    top, bottom = column.nonzero().min().item(), column.nonzero().max().item()
    # The apex is one circumradius above the centre, the base half of one below it.
    assert top == pytest.approx(16 - circumradius, abs=1)
    assert bottom + 1 == pytest.approx(16 + circumradius / 2, abs=1)


@pytest.mark.parametrize("kind", [ELLIPSE, RECTANGLE, TRIANGLE])
def test_every_kind_has_the_area_of_the_same_disk(kind):
    size = 20.0
    area = (_one_shape(kind, size=size, aspect=0.7, angle=0.3) == kind).sum().item()
    assert area == pytest.approx(math.pi * (size / 2) ** 2, rel=0.05)


def test_later_shapes_occlude_earlier_ones_in_image_and_mask():
    def scene(order: list[int]) -> tuple[Tensor, Tensor]:
        kinds = torch.tensor([ELLIPSE, RECTANGLE])[order]
        centres = torch.tensor([[12.0, 16.0], [20.0, 16.0]])[order]
        colours = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])[order]
        shapes = Shapes(
            kind=kinds[None],
            center=centres[None],
            size=torch.full((1, 2), 14.0),
            aspect=torch.ones(1, 2),
            angle=torch.zeros(1, 2),
            colour=colours[None],
        )
        image, mask = render(shapes, torch.full((1, 3, 32, 32), 0.5))
        return image[0], mask[0]

    overlap, ellipse_only, rectangle_only, outside = (16, 16), (16, 7), (16, 25), (2, 2)
    cases = (([0, 1], RECTANGLE, [0.0, 0.0, 1.0]), ([1, 0], ELLIPSE, [1.0, 0.0, 0.0]))
    for order, top, top_colour in cases:
        image, mask = scene(order)
        assert mask[overlap] == top
        assert image[:, overlap[0], overlap[1]].tolist() == top_colour
        assert mask[ellipse_only] == ELLIPSE and mask[rectangle_only] == RECTANGLE
        assert mask[outside] == 0 and image[:, 2, 2].tolist() == [0.5, 0.5, 0.5]


def test_empty_slots_paint_nothing():
    shapes = Shapes(
        kind=torch.zeros(1, 1, dtype=torch.int64),
        center=torch.full((1, 1, 2), 16.0),
        size=torch.full((1, 1), 20.0),
        aspect=torch.ones(1, 1),
        angle=torch.zeros(1, 1),
        colour=torch.ones(1, 1, 3),
    )
    background = torch.rand(1, 3, 32, 32)
    image, mask = render(shapes, background)
    assert torch.equal(image, background) and not mask.any()


# --- datamodule ---------------------------------------------------------------------------


def test_dataloaders_yield_expected_batches():
    datamodule = _datamodule(loader={"eval_batch_size": 16})
    datamodule.setup("fit")
    train = list(datamodule.train_dataloader())
    assert [images.shape for images, _, _ in train] == [(8, 3, 32, 32)] * 2  # 20 // 8, last dropped
    assert all(masks.shape == (8, 32, 32) and masks.dtype == torch.int64 for _, masks, _ in train)
    assert all(len(names) == 8 for _, _, names in train)
    assert [len(images) for images, _, _ in datamodule.val_dataloader()] == [16, 4]
    assert [len(images) for images, _, _ in datamodule.test_dataloader()] == [8]


def test_train_dataloader_shuffles_and_eval_dataloaders_do_not():
    datamodule = _datamodule(num_train=64, loader={"batch_size": 64})
    torch.manual_seed(0)
    images, _, _ = next(iter(datamodule.train_dataloader()))
    assert not torch.equal(images, datamodule.dataset("train").images)
    images, _, _ = next(iter(datamodule.val_dataloader()))
    assert torch.equal(images, datamodule.dataset("val").images)


def _rank_of_two(rank: int, monkeypatch: pytest.MonkeyPatch) -> pl.Trainer:
    """A trainer as process ``rank`` of a 2-process DDP run sees itself (nothing launched)."""
    monkeypatch.setenv("LOCAL_RANK", str(rank))
    return pl.Trainer(accelerator="cpu", strategy="ddp", devices=2, logger=False)


@pytest.mark.parametrize("split", ["val", "test"])
def test_distributed_processes_share_an_odd_eval_split_without_repeats(
    split: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    datamodule = _datamodule(num_val=5, num_test=5, loader={"eval_batch_size": 2})
    shares = []
    for rank in (0, 1):
        datamodule.trainer = _rank_of_two(rank, monkeypatch)
        loader = getattr(datamodule, f"{split}_dataloader")()
        shares.append([list(names) for _, _, names in loader])
    expected = [datamodule.dataset(split)[index][2] for index in range(5)]
    # images 0, 2, 4 in two batches and 1, 3 in one: every image once, no padding
    assert shares == [[expected[0:3:2], expected[4:5]], [expected[1:4:2]]]


def test_distributed_training_split_is_left_to_lightning(monkeypatch: pytest.MonkeyPatch) -> None:
    datamodule = _datamodule()
    datamodule.trainer = _rank_of_two(0, monkeypatch)
    assert isinstance(datamodule.train_dataloader().sampler, RandomSampler)


def test_eval_split_smaller_than_the_processes_is_rejected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    datamodule = _datamodule(num_test=1)
    datamodule.trainer = _rank_of_two(0, monkeypatch)
    with pytest.raises(
        ValueError, match="the test split has 1 images but the distributed run has 2"
    ):
        datamodule.test_dataloader()


def test_setup_builds_only_the_splits_a_stage_needs():
    datamodule = _datamodule()
    datamodule.setup("fit")
    assert sorted(datamodule._datasets) == ["train", "val"]
    datamodule.setup("test")
    assert sorted(datamodule._datasets) == ["test", "train", "val"]


def test_dataset_is_cached_and_splits_are_checked():
    datamodule = _datamodule()
    assert datamodule.dataset("val") is datamodule.dataset("val")
    assert len(datamodule.dataset("test")) == 8
    with pytest.raises(ValueError, match="'valid'"):
        datamodule.dataset("valid")


def test_persistent_workers_only_reach_the_loader_with_workers():
    assert (
        not _datamodule(loader={"persistent_workers": True}).train_dataloader().persistent_workers
    )
    loader = _datamodule(loader={"persistent_workers": True, "num_workers": 1}).val_dataloader()
    assert loader.persistent_workers and loader.num_workers == 1


def test_denormalize_inverts_the_normalisation():
    options = {"num_train": 8, "num_val": 8, "num_test": 8}
    raw = _datamodule(mean=[0.0] * 3, std=[1.0] * 3, **options).dataset("val")
    datamodule = _datamodule(mean=[0.4, 0.5, 0.6], std=[0.2, 0.25, 0.3], **options)
    images = datamodule.dataset("val").images
    torch.testing.assert_close(datamodule.denormalize(images), raw.images)
    torch.testing.assert_close(datamodule.denormalize(images[0]), raw.images[0])


def test_metadata_defaults():
    datamodule = _datamodule()
    assert datamodule.classes == list(CLASSES)
    assert datamodule.num_classes == 4 and datamodule.ignore_index == 255
    assert len(datamodule.palette) == 4


def test_default_palette_is_distinct_and_fixed():
    class Blank(SegmentationDataModule):
        def _build_dataset(self, split: str) -> Dataset:
            return _shapes(4)

    classes = [f"class{i}" for i in range(30)]
    palette = Blank(classes, num_classes=30, ignore_index=255, palette=None, **BASE).palette
    assert palette == Blank(classes, 30, 255, None, **BASE).palette
    assert len({tuple(rgb) for rgb in palette}) == 30
    assert palette[0] == [0, 0, 0]
    assert all(len(rgb) == 3 and all(0 <= v <= 255 for v in rgb) for rgb in palette)


def test_base_class_checks_class_count():
    with pytest.raises(ValueError, match=r"data\.num_classes=5 but data\.classes lists 4 names"):
        SegmentationDataModule(["a", "b", "c", "d"], 5, 255, None, **BASE)


@pytest.mark.parametrize(
    ("channels", "stats", "message"),
    [
        (0, {"mean": [], "std": []}, r"data\.in_channels=0 must be positive: 3 for RGB"),
        (4, {}, r"data\.mean=\[.*\] must have one value per image channel \(data\.in_chan"),
        (4, {"mean": [0.5] * 4, "std": [0.2] * 4, "max_value": -1}, r"data\.max_value=-1"),
    ],
)
def test_base_class_checks_the_image_channels(channels, stats, message):
    options = {**BASE, "in_channels": channels, **stats}
    with pytest.raises(ValueError, match=message):
        SegmentationDataModule(["a", "b"], 2, 255, None, **options)


def test_base_class_takes_any_band_count():
    options = {**BASE, "in_channels": 7, "mean": [0.1] * 7, "std": [0.3] * 7}
    datamodule = SegmentationDataModule(["a", "b"], 2, 255, None, **options, max_value=4095)
    assert datamodule.image_reader.in_channels == 7
    assert datamodule.image_reader.max_value == 4095.0


def test_base_class_needs_build_dataset():
    datamodule = SegmentationDataModule(["a", "b"], 2, 255, None, **BASE)
    with pytest.raises(NotImplementedError, match="_build_dataset"):
        datamodule.dataset("train")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"classes": ["a", "b", "c"]}, r"data\.num_classes=4 but data\.classes lists 3"),
        ({"ignore_index": 2}, r"data\.ignore_index=2 is a valid class index"),
        ({"ignore_index": 0}, r"data\.ignore_index=0"),
        ({"palette": [[0, 0, 0]] * 3}, r"data\.palette has 3 colours"),
        ({"palette": [[0, 0, 0]] * 3 + [[0, 0, 300]]}, r"data\.palette\[3\]"),
        ({"loader": {"batch_size": 0}}, r"data\.loader\.batch_size=0 must be positive"),
        ({"loader": {"eval_batch_size": -1}}, r"data\.loader\.eval_batch_size=-1 must be"),
        ({"loader": {"num_workers": -1}}, r"data\.loader\.num_workers=-1 must be >= 0"),
        ({"std": [0.2, 0.0, 0.2]}, r"data\.std="),
        ({"mean": [0.5, 0.5]}, r"data\.mean="),
        ({"num_classes": 5}, r"data\.num_classes=5 but the shapes generator draws 4"),
        ({"min_size": 0.6, "max_size": 0.4}, r"data\.min_size=0\.6"),
        ({"max_size": 1.5}, r"data\.max_size=1\.5"),
        ({"min_aspect": 0.0}, r"data\.min_aspect=0\.0"),
        ({"image_size": 4}, r"data\.image_size=4"),
        ({"max_shapes": 0}, r"data\.max_shapes=0"),
        ({"noise": -0.1}, r"data\.noise=-0\.1"),
        ({"num_val": 0}, r"data\.num_val=0"),
    ],
)
def test_invalid_options_are_rejected_naming_the_key(overrides, message):
    with pytest.raises(ValueError, match=message):
        _datamodule(**overrides)


def test_batch_larger_than_the_training_split_is_rejected():
    with pytest.raises(ValueError, match=r"data\.loader\.batch_size=32 exceeds the 20 training"):
        _datamodule(loader={"batch_size": 32}).train_dataloader()


def test_config_builds_the_datamodule_with_its_own_values():
    datamodule = SyntheticShapesDataModule(**{**CONFIG, "num_train": 16, "num_val": 4})
    assert datamodule.classes == list(CONFIG["classes"]) == list(CLASSES)
    assert datamodule.num_classes == len(CLASSES) and datamodule.ignore_index == 255
    assert datamodule.generator_options == ShapesOptions(
        **{key: CONFIG[key] for key in ShapesOptions._fields}
    )
    image, mask, _ = datamodule.dataset("train")[0]
    assert image.shape == (3, 32, 32) and mask.shape == image.shape[1:]


def test_a_generator_option_the_config_lacks_is_refused_not_defaulted():
    options = {key: value for key, value in CONFIG.items() if key != "min_aspect"}
    with pytest.raises(TypeError, match="min_aspect"):
        SyntheticShapesDataModule(**options)
