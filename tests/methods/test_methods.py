"""Training methods: FixMatch's pseudo-labels, Mean Teacher's moving average and ramp-up, hidden
masks kept out of every loss, short runs of each method, and resumes that continue exactly."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tiny import resume, train_once

import seglab
from seglab.cli.eval import main as eval_main
from seglab.config.spec import resolve_spec
from seglab.engine.checkpoints import load_checkpoint
from seglab.methods import FixMatch, MeanTeacher
from seglab.methods.fixmatch import confident_targets, unlabeled_loss
from seglab.methods.mean_teacher import ema_decay_at, ema_update, sigmoid_rampup
from seglab.methods.perturb import cutmix, step_generator
from seglab.runs.directories import read_scalars
from seglab.workflows.build import build_datamodule, build_task

IGNORE = 255
SMALL = [
    "data.image_size=32",
    "data.num_train=16",
    "data.num_val=4",
    "data.num_test=4",
    "data.loader.batch_size=4",
    "model.encoder.widths=[8,16,32]",
    "data.few_labels.labeled_fraction=0.5",
]


def here(tmp_path: Path) -> list[str]:
    """Overrides that put a composed config's outputs under the test's own folder."""
    return [f"paths.{key}={tmp_path}" for key in ("output_root", "output_dir", "cache_dir")]


def test_fixmatch_keeps_only_pseudo_labels_that_reach_the_threshold() -> None:
    # one image of 1x3 pixels, two classes: probabilities 0.97, 0.95 and 0.6 for class 1, 0, 1
    probabilities = torch.tensor([[[[0.03, 0.95, 0.4]], [[0.97, 0.05, 0.6]]]])
    targets, confident = confident_targets(probabilities, 0.95, IGNORE)
    assert targets.tolist() == [[[1, 0, IGNORE]]]
    assert confident.tolist() == [[[True, True, False]]]
    logits = torch.tensor([[[[0.0, 1.0, 2.0]], [[1.0, 0.0, -1.0]]]])
    # cross-entropy of the two confident pixels, over all three
    expected = (-math.log(math.e / (1 + math.e)) - math.log(math.e / (math.e + 1))) / 3
    assert unlabeled_loss(logits, targets, IGNORE).item() == pytest.approx(expected)


def test_cutmix_moves_targets_with_their_pixels() -> None:
    # each image and its targets hold the image's index: a pasted pixel keeps its own label
    images = torch.arange(4.0)[:, None, None, None].expand(4, 3, 8, 8).clone()
    targets = torch.arange(4)[:, None, None].expand(4, 8, 8).clone()
    mixed, mixed_targets = cutmix(images, targets, step_generator(0, 3))
    assert torch.equal(mixed[:, 0].long(), mixed_targets)
    assert not torch.equal(mixed_targets, targets), "some box was pasted"


def test_ema_update_matches_a_hand_computation() -> None:
    student, teacher = torch.nn.BatchNorm1d(2), torch.nn.BatchNorm1d(2)
    with torch.no_grad():
        student.weight.copy_(torch.tensor([1.0, 3.0]))
        teacher.weight.copy_(torch.tensor([5.0, -1.0]))
        student.running_mean.copy_(torch.tensor([2.0, 2.0]))
        student.num_batches_tracked.fill_(7)
    ema_update(teacher, student, 0.75)
    assert teacher.weight.tolist() == [0.75 * 5 + 0.25 * 1, 0.75 * -1 + 0.25 * 3]
    assert teacher.running_mean.tolist() == [0.5, 0.5]
    assert teacher.num_batches_tracked.item() == 7
    # the first steps average over what the student has been so far
    assert ema_decay_at(1, 0.99) == 0.5 and ema_decay_at(3, 0.99) == 0.75
    assert ema_decay_at(10_000, 0.99) == 0.99


def test_consistency_weight_ramps_up_as_a_sigmoid() -> None:
    assert sigmoid_rampup(0, 100) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(50, 100) == pytest.approx(math.exp(-1.25))
    assert sigmoid_rampup(100, 100) == sigmoid_rampup(500, 100) == 1.0
    assert sigmoid_rampup(0, 0) == 1.0


@pytest.mark.parametrize("method", ["fixmatch", "mean_teacher"])
def test_hidden_masks_never_reach_the_loss(method: str, compose, tmp_path: Path) -> None:
    """The unlabelled batch carries the masks of unlabelled training samples for scoring the
    pseudo-labels: scrambling them changes that score only."""
    cfg = compose("train", *SMALL, *here(tmp_path), f"method={method}", "method.threshold=0")
    datamodule = build_datamodule(resolve_spec(cfg))
    datamodule.setup("fit")
    task = build_task(resolve_spec(cfg), datamodule)
    task.method.attach(datamodule)
    torch.manual_seed(0)
    batch, _, _ = next(iter(datamodule.train_dataloader()))
    weak, hidden, names = batch["unlabeled"]
    first = task.method.training_step(task, batch)
    scrambled = torch.randint(0, 4, hidden.shape)
    second = task.method.training_step(task, {**batch, "unlabeled": (weak, scrambled, names)})
    assert first.loss.item() == second.loss.item()
    for name in ("train/loss/supervised", "train/loss/unlabeled"):
        assert first.logged[name].item() == second.logged[name].item(), name
    accuracy = "train/pseudo/accuracy"
    assert first.logged[accuracy].item() != second.logged[accuracy].item()
    assert first.logged["train/loss/unlabeled"].item() > 0
    # while the labelled masks do reach it
    images, masks, labeled_names = batch["labeled"]
    relabelled = {**batch, "labeled": (images, (masks + 1) % 4, labeled_names)}
    assert task.method.training_step(task, relabelled).loss.item() != first.loss.item()


def test_the_task_validates_and_saves_the_teacher_and_trains_the_student(
    compose, tmp_path: Path
) -> None:
    cfg = compose("train", *SMALL, *here(tmp_path), "method=mean_teacher")
    task = build_task(resolve_spec(cfg), build_datamodule(resolve_spec(cfg)))
    method = task.method
    assert isinstance(method, MeanTeacher) and method.teacher(task) is task.model
    assert not any(p.requires_grad for p in task.model.parameters())
    assert all(p.requires_grad for p in method.student(task).parameters())
    keys = task.state_dict().keys()
    assert any(key.startswith("model.") for key in keys)
    assert any(key.startswith("method.network.") for key in keys), "the student is saved"
    cfg.method.validate = "student"
    task = build_task(resolve_spec(cfg), build_datamodule(resolve_spec(cfg)))
    teacher = task.method.teacher(task)
    assert task.method.student(task) is task.model and teacher is not task.model
    # the teacher starts as a frozen copy of the student
    assert not any(p.requires_grad for p in teacher.parameters())
    assert all(p.requires_grad for p in task.model.parameters())
    pairs = zip(teacher.state_dict().values(), task.model.state_dict().values(), strict=True)
    assert all(torch.equal(mine, theirs) for mine, theirs in pairs)


def test_method_options_are_refused_naming_the_key(compose) -> None:
    cfg = compose("train", "method=fixmatch")
    options = {key: cfg.method[key] for key in cfg.method if key != "_target_"}
    options |= {"mean": [0.5] * 3, "std": [0.25] * 3, "ignore_index": IGNORE, "seed": 0}
    with pytest.raises(ValueError, match=r"^method.threshold=1.5 must be in \[0, 1\]"):
        FixMatch(**{**options, "threshold": 1.5})
    with pytest.raises(ValueError, match="^method.combine=zip is not one of"):
        FixMatch(**{**options, "combine": "zip"})


# --- short runs (slow) ---------------------------------------------------------------------

RUN = [*SMALL, "trainer.max_epochs=2", "trainer.log_every_n_steps=1"]
RUN += ["trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fixmatch", "mean_teacher"])
def test_a_short_run_logs_the_unlabelled_loss_and_pseudo_labels(
    method: str, tmp_path: Path, cli
) -> None:
    run_dir = train_once(tmp_path, *RUN, f"method={method}", "method.threshold=0.5")
    scalars = read_scalars(run_dir)
    for name in ("supervised", "unlabeled"):
        assert len(scalars[f"train/loss/{name}"]) == 2, name
    assert all(0 <= value <= 1 for _, value in scalars["train/pseudo/confident_share"])
    assert all(0 <= value <= 1 for _, value in scalars["train/pseudo/accuracy"])
    record = json.loads((run_dir / "labeled.json").read_text())
    assert len(record["labeled"]) == 8 and len(record["unlabeled"]) == 8
    # seglab-eval scores the network that validated: the val mIoU of best.ckpt's epoch
    best = load_checkpoint(run_dir / "checkpoints" / "best.ckpt")
    ckpt = run_dir / "checkpoints" / "best.ckpt"
    code, _, err = cli(
        eval_main, f"ckpt_path={ckpt}", "split=val", f"paths.output_root={tmp_path}", cwd=tmp_path
    )
    assert code == 0, err[-2000:]
    (eval_dir,) = (tmp_path / "eval").iterdir()
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    assert metrics["mIoU"] == pytest.approx(best["seglab"]["best"]["mIoU"], abs=1e-6)
    # seglab.load (as seglab-predict and export) reads that network too, not the student
    loaded = seglab.load(ckpt).model.state_dict()
    for key, value in loaded.items():
        assert torch.equal(value, best["state_dict"][f"model.{key}"]), key
    if method == "mean_teacher":
        student = {k: v for k, v in best["state_dict"].items() if k.startswith("method.network.")}
        assert student and any(
            not torch.equal(value, loaded[key.removeprefix("method.network.")])
            for key, value in student.items()
        ), "the student is saved beside the teacher"


# One labelled and one unlabelled image: every epoch is one step on the same images, in
# whatever order the loaders shuffle them, so a resumed run must repeat the uninterrupted one.
RESUMABLE = [
    "data.image_size=32",
    "data.num_train=2",
    "data.num_val=2",
    "data.num_test=2",
    "data.loader.batch_size=1",
    "data.few_labels.labeled_count=1",
    "method.unlabeled_batch_size=1",
    "model.encoder.widths=[8,16,32]",
    "trainer.log_every_n_steps=1",
    "trainer.deterministic=true",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "test_after_fit=false",
    # a constant rate: a schedule over trainer.max_epochs would differ in the shorter first run
    "scheduler=none",
]
METHOD_OPTIONS = {
    "fixmatch": ["method=fixmatch", "method.threshold=0"],
    "mean_teacher": ["method=mean_teacher", "method.rampup=3", "method.ema_decay=0.5"],
}


@pytest.mark.slow
@pytest.mark.parametrize("method", list(METHOD_OPTIONS))
def test_a_resumed_run_continues_exactly(method: str, tmp_path: Path) -> None:
    args = [*RESUMABLE, *METHOD_OPTIONS[method]]
    for name in ("whole", "part"):
        (tmp_path / name).mkdir()
    whole = train_once(tmp_path / "whole", *args, "trainer.max_epochs=3")
    part = train_once(tmp_path / "part", *args, "trainer.max_epochs=1")
    labeled = (part / "labeled.json").read_text()
    resume(part, "trainer.max_epochs=3", cwd=tmp_path / "part")
    assert (part / "labeled.json").read_text() == labeled, "the same labelled subset"
    expected, resumed = read_scalars(whole), read_scalars(part)
    for name in ("train/loss", "train/loss/unlabeled", "val/mIoU"):
        assert [step for step, _ in resumed[name]] == [step for step, _ in expected[name]], name
        for (_, value), (_, reference) in zip(resumed[name], expected[name], strict=True):
            assert value == pytest.approx(reference, rel=1e-5, abs=1e-7), name
    states = [
        load_checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"] for run in (whole, part)
    ]
    assert states[0].keys() == states[1].keys()
    for key, value in states[0].items():
        torch.testing.assert_close(states[1][key], value, rtol=1e-5, atol=1e-6, msg=key)
    if method == "mean_teacher":
        assert any(key.startswith("method.network.") for key in states[0])


def test_unlabeled_loss_is_plain_cross_entropy_when_all_pixels_are_confident() -> None:
    logits = torch.randn(2, 4, 3, 5)
    targets = torch.randint(0, 4, (2, 3, 5))
    assert unlabeled_loss(logits, targets, IGNORE).item() == pytest.approx(
        F.cross_entropy(logits, targets).item(), rel=1e-6
    )
