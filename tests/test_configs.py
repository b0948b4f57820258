"""Every file under conf/ is composed through Hydra and what it describes is instantiated."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, InstantiationException
from hydra.experimental.callback import Callback as HydraCallback
from hydra.plugins.launcher import Launcher
from hydra.utils import get_class, get_object, instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from PIL import Image
from pytorch_lightning.utilities import CombinedLoader
from tiny import CONF_DIR, ENTRY_CONFIGS

from seglab.config.keys import PERFORMANCE_KEYS
from seglab.config.spec import resolve_spec
from seglab.errors import SeglabError
from seglab.losses import MODES
from seglab.workflows.build import (
    build_boundary_metric,
    build_datamodule,
    build_inferer,
    build_task,
    build_trainer,
)
from seglab.workflows.mounting import (
    compose_config,
    mount_checkpoint_config,
    refuse_group_overrides,
)

# image and mask folders of the train split in the layout each folder dataset expects
FOLDER_LAYOUTS = {
    "folder": ("train/images", "train/masks"),
    "camvid": ("train", "trainannot"),
}


def _group_options() -> list[tuple[str, str]]:
    return sorted(
        (str(path.parent.relative_to(CONF_DIR)), path.stem)
        for path in CONF_DIR.rglob("*.yaml")
        if path.relative_to(CONF_DIR).as_posix() not in ENTRY_CONFIGS
    )


@pytest.fixture
def composed(compose: Callable[..., DictConfig], tmp_path: Path) -> Callable[..., DictConfig]:
    """`compose` with the run's outputs (and stores shared by runs, such as MLflow's) and data
    cache under the test's own folder."""

    def composed_here(config: str, *overrides: str, **options: bool) -> DictConfig:
        paths = [
            f"paths.output_root={tmp_path}",
            f"paths.output_dir={tmp_path}",
            f"paths.cache_dir={tmp_path / 'cache'}",
        ]
        return compose(config, *paths, *overrides, **options)

    return composed_here


def _tiny_folder(root: Path, option: str) -> Path:
    """Two 8x8 pairs per split in the layout of ``data=<option>``, with class-0 masks."""
    image_dir, mask_dir = FOLDER_LAYOUTS[option]
    for split in ("train", "val"):
        images = root / image_dir.replace("train", split)
        masks = root / mask_dir.replace("train", split)
        images.mkdir(parents=True)
        masks.mkdir(parents=True)
        for stem in ("a", "b"):
            Image.new("RGB", (8, 8), (40, 80, 120)).save(images / f"{stem}.png")
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(masks / f"{stem}.png")
    return root


def _small_data(cfg: DictConfig) -> None:
    """Keep generated datasets tiny so instantiating every option stays fast."""
    for key, value in (("num_train", 8), ("num_val", 4), ("num_test", 4)):
        if key in cfg.data:
            cfg.data[key] = value


def _instantiate_group(group: str, cfg: DictConfig, tmp_path: Path) -> None:
    top = group.split("/")[0]
    if top == "data":
        _small_data(cfg)
        datamodule = build_datamodule(resolve_spec(cfg))
        image, mask, _ = datamodule.dataset("train")[0]
        # a class index per pixel; in multilabel mode a yes/no map per class
        assert image.ndim == 3 and mask.ndim == (3 if cfg.mode == "multilabel" else 2)
    elif top == "model":
        model = instantiate(cfg.model).eval()
        with torch.no_grad():
            logits = model(torch.randn(1, 3, 40, 48))
        assert logits.shape == (1, cfg.data.num_classes, 40, 48)
    elif top == "loss":
        _check_loss_in_every_mode(cfg)
    elif top in ("optimizer", "scheduler"):
        weight = torch.nn.Parameter(torch.ones(3))
        optimizer = instantiate(cfg.optimizer)(params=[weight])
        scheduler = instantiate(cfg.scheduler)(optimizer=optimizer, total_steps=20)
        for _ in range(5):
            optimizer.step()
            scheduler.step()
        assert optimizer.param_groups[0]["lr"] > 0
    elif top == "trainer":
        accelerator = cfg.trainer.accelerator
        if accelerator == "gpu" and not torch.cuda.is_available():
            accelerator, precision = "cpu", "32-true"
        else:
            precision = cfg.trainer.precision
        # seglab's own performance keys are applied to the task, not passed to Lightning
        assert set(PERFORMANCE_KEYS) <= set(cfg.trainer)
        trainer = instantiate(
            resolve_spec(cfg).trainer,
            accelerator=accelerator,
            precision=precision,
            logger=False,
            enable_checkpointing=False,
        )
        assert trainer.max_epochs == cfg.trainer.max_epochs
    elif top in ("logger", "callbacks"):
        nodes = list(cfg[top].values())
        assert nodes, f"conf/{group} builds no {top}"
        assert [type(instantiate(node)) for node in nodes] == [
            get_class(node._target_) for node in nodes
        ]
    elif top == "experiment":
        _small_data(cfg)
        if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
            cfg.trainer.accelerator, cfg.trainer.precision = "cpu", "32-true"
        model = build_task(resolve_spec(cfg), build_datamodule(resolve_spec(cfg))).model.eval()
        with torch.no_grad():
            logits = model(torch.randn(1, 3, 64, 64))
        assert logits.shape == (1, cfg.data.num_classes, 64, 64)
        assert build_trainer(resolve_spec(cfg)).max_epochs == cfg.trainer.max_epochs
    elif top in ("paths", "hydra"):
        assert cfg.paths.output_dir == str(tmp_path)
        if group == "hydra/launcher":
            assert issubclass(get_class(cfg.hydra.launcher._target_), Launcher)
        if top == "hydra":
            callbacks = [instantiate(node) for node in cfg.hydra.callbacks.values()]
            assert callbacks and all(isinstance(c, HydraCallback) for c in callbacks)
    elif top == "hparams_search":
        _check_search_space(cfg)
    elif top == "metrics":
        boundary = build_boundary_metric(resolve_spec(cfg), build_datamodule(resolve_spec(cfg)))
        assert boundary.dilation_ratio == cfg.metrics.boundary.dilation_ratio
    elif top == "method":
        # a semi-supervised method needs unlabelled images: half the train split here
        cfg.data.few_labels.labeled_fraction, cfg.data.loader.batch_size = 0.5, 2
        _small_data(cfg)
        datamodule = build_datamodule(resolve_spec(cfg))
        datamodule.setup("fit")
        task = build_task(resolve_spec(cfg), datamodule)
        task.method.attach(datamodule)
        assert type(task.method) is get_class(cfg.method._target_)
        loader = datamodule.train_dataloader()
        batch = next(iter(loader))
        if isinstance(loader, CombinedLoader):  # alone, it yields (batch, index, loader index)
            batch = batch[0]
        assert torch.isfinite(task.method.training_step(task, batch).loss)
    elif top == "inference":
        model = instantiate(cfg.model).eval()
        inferer = build_inferer(resolve_spec(cfg), model)
        assert inferer.model is model
    else:
        pytest.fail(f"conf/{group}/ is a config group this test does not know how to build")


def _check_loss_in_every_mode(cfg: DictConfig) -> None:
    """The loss of ``cfg`` trains on the shapes of each mode it fits and refuses the others."""
    classes, fitting = cfg.data.num_classes, []
    for mode in MODES:
        cfg.mode = mode
        try:
            loss = instantiate(cfg.loss)
        except InstantiationException as error:
            assert f"does not fit mode={mode}; use loss=" in str(error.__cause__)
            continue
        fitting.append(mode)
        logits = torch.randn(2, 1 if mode == "binary" else classes, 8, 8, requires_grad=True)
        if mode == "multilabel":
            target = torch.randint(0, 2, (2, classes, 8, 8))
        else:
            target = torch.randint(0, 2 if mode == "binary" else classes, (2, 8, 8))
        value = loss(logits, target)
        value.backward()
        assert torch.isfinite(value)
    assert fitting, "the loss fits no mode"


def _check_search_space(cfg: DictConfig) -> None:
    """Every searched key names a config value or group, every option of a group exists, and
    each optimised metric has a direction."""
    from hydra_plugins.seglab_optuna_sweeper.space import study_directions
    from seglab.sweeps.objective import objective_names

    sweeper = cfg.hydra.sweeper
    assert sweeper.storage.startswith(f"sqlite:///{cfg.hydra.sweep.dir}/")
    get_class(sweeper._target_)
    names = objective_names(cfg.optimized_metric)
    assert len(study_directions(names, sweeper.direction, sweeper.get("directions"))) == len(names)
    for override in OverridesParser.create().parse_overrides(
        [f"{key}={value}" for key, value in cfg.hydra.sweeper.params.items()]
    ):
        key = override.key_or_group
        if (CONF_DIR / key).is_dir():
            for option in override.value().list:
                assert (CONF_DIR / key / f"{option}.yaml").is_file(), f"{key}={option}"
        else:
            assert OmegaConf.select(cfg, key) is not None, key


#: the data configs that need another task mode than multiclass
DATA_MODES = {"synthetic_binary": "binary", "synthetic_multilabel": "multilabel"}


# about half a second each, 50 of them: the whole suite composes every file
@pytest.mark.slow
@pytest.mark.parametrize(
    ("group", "option"), _group_options(), ids=[f"{g}={o}" for g, o in _group_options()]
)
def test_every_config_file_composes_and_instantiates(
    group: str, option: str, composed, tmp_path: Path
) -> None:
    overrides = [f"{group}={option}"]
    data = option if group == "data" else None
    if group == "experiment":  # a recipe on a folder dataset (its own or its parent's) too
        recipe = composed("train", f"experiment={option}", return_hydra_config=True)
        data = recipe.hydra.runtime.choices.get("data")
    if data in FOLDER_LAYOUTS:
        overrides.append(f"data.root={_tiny_folder(tmp_path / 'data', data)}")
    if data in DATA_MODES:  # data made for another task mode than the default
        overrides.append(f"mode={DATA_MODES[data]}")
    hydra_node = group.startswith(("hydra", "hparams_search"))
    cfg = composed("train", *overrides, return_hydra_config=hydra_node)
    _instantiate_group(group, cfg, tmp_path)


def _targets(node: DictConfig, path: str = "") -> Iterator[tuple[str, DictConfig]]:
    """Every node of one config file that names a seglab ``_target_``, with its dotted path."""
    if str(node.get("_target_", "")).startswith("seglab."):
        yield path, node
    for key in node:
        child = node._get_node(key)
        if isinstance(child, DictConfig) and key != "defaults":
            yield from _targets(child, f"{path}.{key}" if path else str(key))


def _parameters(target: Any) -> dict[str, inspect.Parameter]:
    """The named arguments ``target`` takes, following ``**kwargs`` into its base classes."""
    if not inspect.isclass(target):
        return dict(inspect.signature(target).parameters)
    parameters: dict[str, inspect.Parameter] = {}
    for cls in target.__mro__:
        if "__init__" not in vars(cls):
            continue
        own = inspect.signature(cls.__init__).parameters
        for name, parameter in own.items():
            parameters.setdefault(name, parameter)
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in own.values()):
            break
    return parameters


def _plain(value: Any) -> Any:
    """Tuples as lists, so that a Python default compares with a config's list."""
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    return value


def test_python_defaults_never_restate_a_config_value_differently() -> None:
    """A value set in a conf/ file lives there; the argument it goes to has no Python default
    or the same one, so that Python callers and configs never build different things. Values
    wired from elsewhere (interpolations) and nested objects have nothing to restate."""
    differing = []
    for path in sorted(CONF_DIR.rglob("*.yaml")):
        for where, node in _targets(OmegaConf.load(path)):
            target = node._get_node("_target_")._value()
            parameters = _parameters(get_object(target))
            for key in node:
                child = node._get_node(key)
                parameter = parameters.get(str(key))
                if (
                    parameter is None
                    or parameter.default is inspect.Parameter.empty
                    or OmegaConf.is_interpolation(node, str(key))
                    or (isinstance(child, DictConfig) and "_target_" in child)
                ):
                    continue
                value = (
                    OmegaConf.to_container(child)
                    if isinstance(child, DictConfig | ListConfig)
                    else child._value()
                )
                if _plain(parameter.default) != value:
                    name = f"{where}.{key}" if where else key
                    differing.append(
                        f"{path.relative_to(CONF_DIR)}: {name}={value!r} but {target} defaults "
                        f"to {parameter.default!r}"
                    )
    assert not differing, "\n".join(differing)


def test_data_stats_config_composes_data_and_paths(composed, tmp_path: Path) -> None:
    cfg = composed("data_stats", "data=camvid")
    assert cfg.task_name == "data_stats" and cfg.split == "train"
    assert cfg.data.num_classes == 11 and cfg.data.ignore_index == 11
    assert cfg.data.cache_dir == str(tmp_path / "cache")


def test_compose_config_composes_seglab_conf_with_the_overrides(tmp_path: Path) -> None:
    """The one way scripts compose a config: seglab's own conf/, the groups and keys named."""
    cfg = compose_config(
        "train", ["model/encoder=resnet18", "seed=3", f"paths.output_dir={tmp_path}"]
    )
    encoder = OmegaConf.load(CONF_DIR / "model" / "encoder" / "resnet18.yaml")
    assert cfg.model.encoder._target_ == encoder._target_
    assert cfg.seed == 3 and cfg.paths.output_dir == str(tmp_path)
    assert "hydra" not in cfg
    # composing again starts afresh: nothing of the first call carries over
    assert compose_config("train", []).seed == OmegaConf.load(CONF_DIR / "train.yaml").seed


def test_default_train_config_builds_a_task_and_trainer(composed) -> None:
    cfg = composed("train")
    _small_data(cfg)
    datamodule = build_datamodule(resolve_spec(cfg))
    task = build_task(resolve_spec(cfg), datamodule)
    assert task.classes == list(cfg.data.classes)
    assert build_trainer(resolve_spec(cfg)).max_epochs == cfg.trainer.max_epochs


@pytest.mark.parametrize("entry", ["eval", "predict", "export", "prune"])
def test_entry_configs_compose_the_command_line_onto_the_checkpoint_config(
    composed, tmp_path: Path, entry: str
) -> None:
    run = composed("train", "data=camvid", "data.eval_scale=0.5")
    mount_checkpoint_config(OmegaConf.to_container(run, resolve=True))
    required = {
        "eval": ["split=val"],
        "predict": ["input=x"],
        "export": ["output=x.onnx"],
        "prune": ["amount=0.5"],
    }
    cfg = composed(entry, "ckpt_path=x.ckpt", "data.root=/elsewhere", *required[entry])
    assert cfg.task_name == entry and cfg.ckpt_path == "x.ckpt"
    # a key the entry config's own defaults never had, and the run's settings kept around it
    assert cfg.data.root == "/elsewhere"
    assert cfg.data.eval_scale == 0.5 and cfg.data.num_classes == 11
    assert cfg.model == run.model and cfg.inference == run.inference
    assert cfg.paths.output_dir == str(tmp_path)


@pytest.mark.parametrize("override", ["data=camvid", "model/encoder=resnet18", "loss=ce"])
def test_a_group_override_on_a_checkpoint_is_refused_naming_it(override: str) -> None:
    with pytest.raises(SeglabError, match=f"^{override}: the checkpoint's"):
        refuse_group_overrides(["ckpt_path=x.ckpt", override, "data.root=/x"])
    refuse_group_overrides(["ckpt_path=x.ckpt", "data.root=/x", "~data.augment.crop_size"])


def test_a_time_budget_given_as_a_dict_builds_the_trainer(composed) -> None:
    cfg = composed("train", "trainer.max_time={minutes: 2, seconds: 7}")
    trainer = build_trainer(resolve_spec(cfg))
    (timer,) = [c for c in trainer.callbacks if type(c).__name__ == "Timer"]
    assert timer._duration == 127


def test_unknown_group_option_names_it(composed) -> None:
    with pytest.raises(ConfigCompositionException, match="no_such_encoder"):
        composed("train", "model/encoder=no_such_encoder")


def test_misspelt_key_names_it(composed) -> None:
    with pytest.raises(ConfigCompositionException, match="lrr"):
        composed("train", "optimizer.lrr=0.1")


def test_model_and_data_class_counts_must_agree(composed) -> None:
    cfg = composed("train", "model.num_classes=2")
    _small_data(cfg)
    with pytest.raises(Exception, match="model.num_classes=2"):
        build_task(resolve_spec(cfg), build_datamodule(resolve_spec(cfg)))
