"""seglab-prune and seglab/compression/channel_pruning.py: every decoder and attention block
pruned and rebuilt from its weights alone, a pruned run scored, loaded, exported and resumed,
and bad input refused in one line."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from tiny import CONF_DIR, TINY, run_here, train_once
from torch import nn

import seglab
from seglab.cli.eval import main as eval_main
from seglab.cli.export import main as export_main
from seglab.cli.prune import main as prune_main
from seglab.cli.train import main as train_main
from seglab.compression.channel_pruning import (
    PRUNED_KEY,
    parameter_count,
    prune_channels,
    shrink_to,
)
from seglab.config.spec import resolve_spec
from seglab.engine.checkpoints import CHECKPOINT_KEY
from seglab.inference.onnx_model import OnnxSegmenter
from seglab.runs.directories import read_scalars
from seglab.workflows.build import trained_model
from seglab.workflows.prune import PRUNED_CHECKPOINT

AMOUNT = 0.25
#: A convolution loses `AMOUNT` of its inputs and of its outputs, so its weights fall by
#: 1 - (1 - AMOUNT)^2 = 0.4375; measured: 0.42 to 0.437 for every decoder and attention block,
#: 0.32 for SegNet, whose unpooled channels stay. The floor is `AMOUNT`: never less than asked.
MOST_REMOVED = 1 - (1 - AMOUNT) ** 2 + 0.005
DECODERS = sorted(path.stem for path in (CONF_DIR / "model" / "decoder").glob("*.yaml"))
ATTENTIONS = sorted(path.stem for path in (CONF_DIR / "model" / "attention").glob("*.yaml"))
SMALL = ["model.encoder.widths=[8,16,32]"]


def _pruned(compose, *overrides: str) -> tuple[nn.Module, nn.Module, dict]:
    """The network of ``overrides`` before and after pruning, and a checkpoint of the pruned
    one as a pruned run writes it."""
    cfg = compose("train", *SMALL, *overrides)
    torch.manual_seed(0)
    original = instantiate(cfg.model, num_classes=cfg.data.num_classes)
    model = instantiate(cfg.model, num_classes=cfg.data.num_classes)
    model.load_state_dict(original.state_dict())
    prune_channels(model, AMOUNT, "l2", torch.zeros(1, 3, 32, 32))
    config = OmegaConf.to_container(cfg, resolve=False)
    del config["paths"], config["callbacks"], config["logger"]
    config[PRUNED_KEY] = {"amount": AMOUNT, "importance": "l2", "source": "x.ckpt"}
    state = {f"model.{key}": value for key, value in model.state_dict().items()}
    return original.eval(), model.eval(), {CHECKPOINT_KEY: {"config": config}, "state_dict": state}


#: The networks the quick subset prunes (about a second each): a decoder with attention at its
#: stages, and attention with auxiliary heads; every other decoder and attention is slow.
QUICK_PRUNED = [
    ["model/decoder=fpn", "model/attention=scse", "model.attention_at=decoder"],
    ["model/attention=cbam", "model.aux_weight=0.4"],
]


@pytest.mark.parametrize(
    "overrides",
    QUICK_PRUNED
    + [
        pytest.param(overrides, marks=pytest.mark.slow)
        for overrides in [[f"model/decoder={name}"] for name in DECODERS]
        + [[f"model/attention={name}"] for name in ATTENTIONS if name != "none"]
    ],
    ids=lambda overrides: ",".join(item.split("=")[1] for item in overrides),
)
def test_every_decoder_and_attention_prunes_and_rebuilds_from_its_weights(
    compose, overrides: list[str]
) -> None:
    original, model, checkpoint = _pruned(compose, *overrides)
    removed = 1 - parameter_count(model) / parameter_count(original)
    assert AMOUNT <= removed <= MOST_REMOVED, removed
    image = torch.randn(2, 3, 37, 45)  # not a multiple of the stride
    with torch.no_grad():
        expected = original(image)
        logits = model(image)
    assert logits.shape == expected.shape
    for original_head, head in zip(original.aux_heads, model.aux_heads, strict=True):
        assert head.out_channels == original_head.out_channels
    cfg = OmegaConf.create(checkpoint[CHECKPOINT_KEY]["config"])
    rebuilt = trained_model(resolve_spec(cfg), checkpoint)
    with torch.no_grad():
        assert torch.equal(rebuilt(image), logits)


@pytest.mark.slow  # prunes a network: seconds
def test_segnet_keeps_the_channels_that_unpooling_pairs(compose) -> None:
    original, model, _ = _pruned(compose, "model/decoder=segnet")
    pairs = [
        (original.encoder.stages[0][-3], model.encoder.stages[0][-3]),
        (original.decoder.bottleneck[0], model.decoder.bottleneck[0]),
    ]
    for before, after in pairs:
        assert after.out_channels == before.out_channels
    # the convolutions unpooling does not read are pruned
    assert model.encoder.stages[-1][0].out_channels < original.encoder.stages[-1][0].out_channels


def test_shrink_to_gives_each_layer_the_shapes_of_the_weights() -> None:
    def network(width: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(3, width, 3),
            nn.BatchNorm2d(width),
            nn.Conv2d(width, width, 3, groups=width),  # depthwise
            nn.GroupNorm(1, width),
            nn.ConvTranspose2d(width, width + 2, 2, stride=2),
            nn.Conv2d(width + 2, 4, 1),
        )

    small = network(4)
    shrunk = shrink_to(network(8), small.state_dict())
    shrunk.load_state_dict(small.state_dict())
    assert (shrunk[0].out_channels, shrunk[1].num_features) == (4, 4)
    assert (shrunk[2].in_channels, shrunk[2].out_channels, shrunk[2].groups) == (4, 4, 4)
    assert shrunk[3].num_channels == 4
    assert (shrunk[4].in_channels, shrunk[4].out_channels, shrunk[5].in_channels) == (4, 6, 6)
    image = torch.randn(1, 3, 9, 9)
    assert torch.equal(shrunk.eval()(image), small.eval()(image))
    linear = shrink_to(nn.Linear(8, 6), nn.Linear(5, 3).state_dict())
    assert (linear.in_features, linear.out_features) == (5, 3)


# --- seglab-prune end to end ----------------------------------------------------------------


@pytest.fixture(scope="module")
def pruned_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny trained run and the seglab-prune run made from its best checkpoint."""
    root = tmp_path_factory.mktemp("prune")
    source = train_once(root, *TINY, "trainer.max_epochs=1", "test_after_fit=false")
    before = {path: path.stat().st_mtime_ns for path in source.rglob("*")}
    code = run_here(
        prune_main,
        f"ckpt_path={source / 'checkpoints' / 'best.ckpt'}",
        f"amount={AMOUNT}",
        "trainer.max_epochs=1",
        f"paths.output_root={root}",
        cwd=root,
    )
    assert code == 0, "seglab-prune failed: its error is in the captured output"
    assert {path: path.stat().st_mtime_ns for path in source.rglob("*")} == before
    (run_dir,) = (root / "prune").iterdir()
    return {"root": root, "source": source, "run": run_dir}


@pytest.mark.slow
def test_prune_makes_a_run_of_its_own(pruned_run: dict[str, Path]) -> None:
    run_dir, source = pruned_run["run"], pruned_run["source"]
    assert list(run_dir.glob("events.out.tfevents.*"))
    assert {p.name for p in (run_dir / "checkpoints").iterdir()} == {"best.ckpt", "last.ckpt"}
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    config = checkpoint[CHECKPOINT_KEY]["config"]
    assert config["task_name"] == "prune"
    assert config[PRUNED_KEY] == {
        "amount": AMOUNT,
        "importance": "l2",
        "source": str(source / "checkpoints" / "best.ckpt"),
    }
    # every path of the run is its own
    assert str(source) not in json.dumps({k: v for k, v in config.items() if k != PRUNED_KEY})
    original = seglab.load(source / "checkpoints" / "best.ckpt").model
    for name in ("last.ckpt", "best.ckpt", f"../{PRUNED_CHECKPOINT}"):
        predictor = seglab.load(run_dir / "checkpoints" / name)
        removed = 1 - parameter_count(predictor.model) / parameter_count(original)
        assert AMOUNT <= removed <= MOST_REMOVED
        assert predictor(torch.rand(3, 37, 45)).shape == (37, 45)


@pytest.mark.slow
def test_a_pruned_checkpoint_is_scored_and_exported(pruned_run: dict[str, Path], cli) -> None:
    root, best = pruned_run["root"], pruned_run["run"] / "checkpoints" / "best.ckpt"
    out = root / "commands"
    out.mkdir()
    code, _, err = cli(
        eval_main, f"ckpt_path={best}", "split=val", f"paths.output_root={out}", cwd=out
    )
    assert code == 0, err[-3000:]
    (metrics,) = (out / "eval").glob("*/metrics.json")
    # the pruned run's one fine-tuning epoch validated the network best.ckpt holds
    (logged,) = read_scalars(pruned_run["run"])["val/mIoU"]
    assert json.loads(metrics.read_text())["mIoU"] == pytest.approx(logged[1], abs=1e-4)
    code, _, err = cli(
        export_main,
        f"ckpt_path={best}",
        f"output={out / 'model.int8.onnx'}",
        "quantize=int8",
        "calibration.num_images=4",
        f"paths.output_root={out}",
        cwd=out,
    )
    assert code == 0, err[-3000:]
    # the INT8 file runs and gives the pruned network's logit channels at any image size
    image = torch.rand(1, 3, 37, 45)
    with torch.no_grad():
        expected = seglab.load(best).model(image).shape
    assert OnnxSegmenter(out / "model.int8.onnx")(image).shape == expected
    assert expected[-2:] == (37, 45)


@pytest.mark.slow
def test_a_pruned_run_resumes_with_seglab_train(pruned_run: dict[str, Path], cli) -> None:
    run_dir = pruned_run["run"]
    last = run_dir / "checkpoints" / "last.ckpt"
    code, _, err = cli(
        train_main, f"ckpt_path={last}", "trainer.max_epochs=2", cwd=pruned_run["root"]
    )
    assert code == 0, err[-3000:]
    assert torch.load(last, weights_only=True)["epoch"] == 1
    assert list((run_dir / ".hydra").glob("resume-*"))


@pytest.mark.slow
def test_no_fine_tuning_keeps_the_pruned_network(
    pruned_run: dict[str, Path], tmp_path, cli
) -> None:
    source = pruned_run["source"] / "checkpoints" / "best.ckpt"
    code, _, err = cli(
        prune_main,
        f"ckpt_path={source}",
        "trainer.max_epochs=0",
        f"paths.output_root={tmp_path}",
        cwd=tmp_path,
    )
    assert code == 0, err[-3000:]
    (run_dir,) = (tmp_path / "prune").iterdir()
    assert not (run_dir / "checkpoints").exists()
    predictor = seglab.load(run_dir / PRUNED_CHECKPOINT)
    assert predictor(torch.rand(3, 32, 32)).shape == (32, 32)


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", ["0", "1", "-0.1", "1.5", "half"])
def test_an_amount_outside_zero_one_is_refused_in_one_line(
    amount: str, cli, tmp_path: Path
) -> None:
    code, _, err = cli(prune_main, "ckpt_path=absent.ckpt", f"amount={amount}", cwd=tmp_path)
    assert code == 2
    assert err.startswith(f"seglab-prune: error: amount={amount} must be a share"), err
    assert len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "ckpt_path is required"),
        (("ckpt_path=absent.ckpt", "importance=l3"), "importance=l3 is not one of: l1, l2"),
        (("ckpt_path=absent.ckpt",), "ckpt_path=absent.ckpt does not exist"),
    ],
    ids=["no-checkpoint", "importance", "missing-file"],
)
def test_bad_options_are_refused_in_one_line(args, message: str, cli, tmp_path: Path) -> None:
    code, _, err = cli(prune_main, *args, cwd=tmp_path)
    assert code == 2
    assert err.startswith("seglab-prune: error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_without_torch_pruning_it_says_what_to_install(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch_pruning", None)  # import torch_pruning now fails
    code, _, err = cli(prune_main, "ckpt_path=absent.ckpt", cwd=tmp_path)
    assert code == 2
    (line,) = err.strip().splitlines()
    assert re.fullmatch(
        r"seglab-prune: error: .*needs torch_pruning: pip install 'seglab\[prune\]'", line
    )
