"""Configs read from files build only what seglab's conf/ builds: checkpoints through every
entry point, a run directory through seglab-reproduce, and a user's own components on request."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from hydra.utils import get_method, instantiate
from omegaconf import OmegaConf
from own_components import OwnEncoder
from PIL import Image
from tiny import CONF_DIR as CONF
from tiny import ENTRY_CONFIGS, TINY, train_once

import seglab
from seglab.cli.eval import main as eval_main
from seglab.cli.export import main as export_main
from seglab.cli.predict import main as predict_main
from seglab.cli.reproduce import main as reproduce_main
from seglab.cli.train import main as train_main
from seglab.config.trust import HYDRA_CALLBACKS, RERUN_RESOLVER_VALUES, TARGETS, untrusted_part
from seglab.engine.checkpoints import CHECKPOINT_KEY
from seglab.errors import SeglabError
from seglab.runs.reproduce import untrusted_run

GADGET_TARGET = "pathlib.Path.write_text"
SHORT_RUN = (*TINY, "trainer.max_epochs=1", "test_after_fit=false")


def _gadget(marker: Path) -> dict[str, Any]:
    """Writes ``marker`` when Hydra instantiates it: the harm, made visible."""
    path = {"_target_": "pathlib.Path", "_args_": [str(marker)]}
    return {"_target_": GADGET_TARGET, "_args_": [path, "written from a config"]}


def _targets(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["_target_"]} if "_target_" in node else set()
        return found.union(*(_targets(child) for child in node.values()))
    if isinstance(node, list):
        return set().union(*(_targets(child) for child in node))
    return set()


def _strings(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set().union(*(_strings(child) for child in node.values()))
    if isinstance(node, list):
        return set().union(*(_strings(child) for child in node))
    return {node} if isinstance(node, str) else set()


# --- the allowlist is conf/ ----------------------------------------------------------------


@pytest.mark.slow
def test_the_allowlist_is_exactly_what_conf_builds(compose, tmp_path: Path) -> None:
    """Every group option and experiment composed as seglab-train composes it: its targets (the
    config a checkpoint stores, and the Hydra callbacks) are all listed, every listed one is
    used, and the composed configs pass the checks as a checkpoint and as a run's config.yaml."""
    options = sorted(
        (str(path.parent.relative_to(CONF)), path.stem)
        for path in CONF.rglob("*.yaml")
        if path.relative_to(CONF).as_posix() not in ENTRY_CONFIGS
    )
    assert ("experiment", "camvid") in options and ("model/encoder", "resnet18") in options
    used, callbacks, resolver_values = set(), set(), set()
    for group, option in [("", ""), *options]:
        overrides = [f"{group}={option}"] if group else []
        cfg = compose("train", *overrides, return_hydra_config=True)
        callbacks |= _targets(OmegaConf.to_container(cfg.hydra.callbacks))
        del cfg.hydra
        saved = OmegaConf.to_container(cfg, resolve=False)  # as in .hydra/config.yaml
        assert untrusted_part(saved, resolver_values=RERUN_RESOLVER_VALUES) is None, option
        resolver_values |= _strings(saved) & RERUN_RESOLVER_VALUES
        cfg.paths.output_dir, cfg.paths.cache_dir = str(tmp_path), str(tmp_path / "cache")
        stored = OmegaConf.to_container(cfg, resolve=True)  # as in a checkpoint
        assert untrusted_part(stored) is None, f"{group}={option}"
        used |= _targets(stored)
    assert callbacks == HYDRA_CALLBACKS
    assert used | callbacks == TARGETS, "conf/ and seglab.config.trust.TARGETS differ"
    assert resolver_values == RERUN_RESOLVER_VALUES


def test_a_prefix_would_not_do_hydra_reaches_any_module_attribute() -> None:
    """Why the list holds exact names: Hydra resolves a target through a module's attributes,
    so ``seglab.`` names pathlib's write_text too."""
    sneaky = "seglab.engine.checkpoints.Path.write_text"
    assert get_method(sneaky) is Path.write_text
    assert untrusted_part({"model": {"_target_": sneaky}}).key == "model._target_"


@pytest.mark.parametrize(
    ("config", "key", "reason"),
    [
        ({"data": {"mean": {"_args_": [1]}}}, "data.mean", "_args_ in a node without a _target_"),
        ({"a": [{"b": {"_partial_": True}}]}, "a[0].b", "_partial_ in a node without a _target_"),
        ({"data": {"root": "${oc.env:HOME}/x"}}, "data.root", "data.root=${oc.env:HOME}/x calls"),
        ({"data": {"root": "${oc.decode:'[1]'}"}}, "data.root", "calls a resolver"),
        ({"x": ["${ now :%H}"]}, "x[0]", "x[0]=${ now :%H} calls a resolver"),
        ({"hydra": {"job": {"env_set": {"A": "1"}}}}, "hydra", "Hydra reads as its own settings"),
        ({"defaults": ["_self_"]}, "defaults", "Hydra reads as its own settings"),
        ({"model": {"_target_": ["seglab.models.Segmenter"]}}, "model._target_", "is not a"),
    ],
)
def test_hydra_keys_resolvers_and_hydra_settings_are_refused(
    config: dict, key: str, reason: str
) -> None:
    untrusted = untrusted_part(config)
    assert untrusted is not None and untrusted.key == key and reason in untrusted.reason


def test_references_between_keys_and_trusted_targets_pass() -> None:
    config = {"model": {"_target_": "mine.Net", "classes": "${data.num_classes}"}}
    assert untrusted_part(config).target == "mine.Net"
    assert untrusted_part(config, trusted=["mine.Net"]) is None


# --- a checkpoint carrying the gadget, through every entry point ---------------------------


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run directory of one tiny seglab-train run."""
    return train_once(tmp_path_factory.mktemp("plain"), *SHORT_RUN)


def _plant(config: dict, where: str, gadget: dict) -> str:
    """Put ``gadget`` into ``config`` at the place named ``where``; the key a refusal names."""
    if where == "model":
        config["model"]["encoder"] = gadget
        return "model.encoder._target_"
    if where == "data":
        config["data"]["mean"] = gadget
        return "data.mean._target_"
    if where == "loss":
        config["loss"]["weights"]["ce"] = gadget
        return "loss.weights.ce._target_"
    if where == "optimizer":
        config["optimizer"]["lr"] = gadget
        return "optimizer.lr._target_"
    if where == "callbacks":
        name = next(iter(config["callbacks"]))
        config["callbacks"][name]["filename"] = gadget
        return f"callbacks.{name}.filename._target_"
    if where == "list":
        config["model"]["encoder"]["widths"][1] = gadget
        return "model.encoder.widths[1]._target_"
    if where == "partial":
        config["model"]["attention"] = {**gadget, "_partial_": True}
        return "model.attention._target_"
    assert where == "in-partial"
    config["model"]["decoder"]["_args_"] = [gadget]
    return "model.decoder._args_[0]._target_"


PLACES = ["model", "data", "loss", "optimizer", "callbacks", "list", "partial", "in-partial"]
COMMANDS = ["seglab-eval", "seglab-predict", "seglab-export", "seglab.load", "seglab-train"]


@pytest.mark.slow
@pytest.mark.parametrize("where", PLACES)
@pytest.mark.parametrize("command", COMMANDS)
def test_a_checkpoint_naming_a_foreign_target_is_refused_unbuilt(
    command: str,
    where: str,
    plain_run: Path,
    tmp_path: Path,
    cli,
) -> None:
    marker = tmp_path / "written"
    checkpoint = torch.load(plain_run / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint = copy.deepcopy(checkpoint)
    key = _plant(checkpoint[CHECKPOINT_KEY]["config"], where, _gadget(marker))
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    torch.save(checkpoint, path)
    torch.load(path, weights_only=True)  # plain data: the pickle check lets it through
    # the file and the key refused, and how to trust the target
    refused = f"ckpt_path={path}: {key}={GADGET_TARGET} is not a target seglab's configs build"
    remedy = f"add trusted_targets=[{GADGET_TARGET}]"
    if command == "seglab.load":
        with pytest.raises(SeglabError) as failure:
            seglab.load(path)
        message = str(failure.value)
        assert message.startswith(refused) and message.endswith(remedy), message
    else:
        image = tmp_path / "photo.png"
        Image.new("RGB", (8, 8)).save(image)
        args = {
            "seglab-eval": (eval_main, "split=val"),
            "seglab-predict": (predict_main, f"input={image}", f"output={tmp_path / 'out'}"),
            "seglab-export": (export_main, "format=torchscript", f"output={tmp_path / 'm.pt'}"),
            "seglab-train": (train_main,),
        }[command]
        output_root = () if command == "seglab-train" else (f"paths.output_root={tmp_path}",)
        code, _, err = cli(
            args[0],
            f"ckpt_path={path}",
            *args[1:],
            *output_root,
            cwd=tmp_path,
        )
        assert code == 2, err[-3000:]
        (line,) = [line for line in err.splitlines() if "error:" in line]
        assert line.startswith(f"{command}: error: {refused}") and line.endswith(remedy), line
    assert not marker.exists(), "the checkpoint's config wrote a file"
    # the node is harmful indeed: built, it writes the file
    instantiate(_gadget(marker))
    assert marker.exists()


# --- a user's own components ---------------------------------------------------------------


@pytest.fixture(scope="module")
def own_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run whose encoder is the user's own class (tests/ is on the import path)."""
    return train_once(
        tmp_path_factory.mktemp("own"),
        *SHORT_RUN,
        "model.encoder._target_=own_components.OwnEncoder",
        cwd=Path(__file__).parents[1],
    )


OWN = "own_components.OwnEncoder"
OWN_REFUSED = f"model.encoder._target_={OWN} is not a target seglab's configs build"


@pytest.mark.slow
def test_own_encoder_is_refused_by_default_and_built_when_trusted(
    own_run: Path, tmp_path: Path, cli
) -> None:
    checkpoint = own_run / "checkpoints" / "last.ckpt"
    with pytest.raises(SeglabError, match=f"{OWN_REFUSED}.*add trusted_targets=\\[{OWN}\\]"):
        seglab.load(checkpoint)
    predictor = seglab.load(checkpoint, trusted_targets=[OWN])
    assert isinstance(predictor.model.encoder, OwnEncoder)

    image = tmp_path / "photo.png"
    Image.new("RGB", (12, 10)).save(image)
    io = {"cwd": tmp_path}
    runs = {
        "seglab-eval": (eval_main, "split=val"),
        "seglab-predict": (predict_main, f"input={image}", f"output={tmp_path / 'masks'}"),
        "seglab-export": (export_main, "format=torchscript", f"output={tmp_path / 'model.pt'}"),
    }
    for command, (main, *args) in runs.items():
        common = (f"ckpt_path={checkpoint}", *args, f"paths.output_root={tmp_path}")
        code, _, err = cli(main, *common, **io)
        assert code == 2 and OWN_REFUSED in err, (command, err[-2000:])
        code, _, err = cli(main, *common, f"trusted_targets=[{OWN}]", **io)
        assert code == 0, (command, err[-2000:])
    assert (tmp_path / "masks" / "photo.png").is_file() and (tmp_path / "model.pt").is_file()

    resume = (f"ckpt_path={checkpoint}", "trainer.max_epochs=2")
    code, _, err = cli(train_main, *resume, **io)
    assert code == 2 and OWN_REFUSED in err, err[-2000:]
    code, _, err = cli(train_main, *resume, f"trusted_targets=[{OWN}]", **io)
    assert code == 0, err[-3000:]
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 1


# --- a run directory that seglab-reproduce re-runs -----------------------------------------


def _edited_run(plain_run: Path, tmp_path: Path, name: str, edit: Any) -> Path:
    """A copy of ``plain_run`` whose ``.hydra/<name>`` went through ``edit(dict)``."""
    run = tmp_path / "run"
    shutil.copytree(plain_run, run)
    file = run / ".hydra" / name
    content = yaml.safe_load(file.read_text())
    edit(content)
    file.write_text(yaml.safe_dump(content))
    return run


@pytest.mark.slow
def test_a_real_run_directory_passes(plain_run: Path) -> None:
    assert untrusted_run(plain_run / ".hydra") is None


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "where", "key"),
    [
        ("config.yaml", ("model", "encoder"), "model.encoder._target_=pathlib.Path.write_text"),
        ("config.yaml", ("callbacks", "gadget"), "callbacks.gadget._target_=pathlib.Path.write"),
        ("config.yaml", ("hydra",), "hydra is a node Hydra reads as its own settings"),
        ("hydra.yaml", ("hydra", "callbacks", "gadget"), "hydra.callbacks.gadget._target_=pathl"),
    ],
)
def test_seglab_reproduce_refuses_a_run_directory_naming_a_foreign_target(
    name: str,
    where: tuple[str, ...],
    key: str,
    plain_run: Path,
    tmp_path: Path,
    cli,
) -> None:
    marker = tmp_path / "written"

    def plant(content: dict) -> None:
        *parents, leaf = where
        node = content
        for parent in parents:
            node = node[parent]
        # a hydra node of its own in config.yaml would give Hydra callbacks to run
        node[leaf] = (
            {"callbacks": {"gadget": _gadget(marker)}} if where == ("hydra",) else (_gadget(marker))
        )

    run = _edited_run(plain_run, tmp_path, name, plant)
    code, out, err = cli(reproduce_main, str(run), cwd=tmp_path)
    assert code == 2, err[-3000:]
    (line,) = err.strip().splitlines()
    saved = run.resolve() / ".hydra"
    assert line.startswith(f"seglab-reproduce: error: {saved / name}: {key}"), line
    assert line.endswith(
        f"if you trust this run, train it again yourself: seglab-train --config-path {saved} "
        "--config-name config"
    )
    assert "re-running" not in out and not marker.exists()
