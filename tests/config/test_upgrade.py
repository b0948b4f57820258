"""Configs that an earlier seglab saved load in today's form: the module paths of before the
package layout pass the trust check and name today's classes, and each key a run of an earlier
seglab did not write gets today's default."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from hydra.utils import get_object
from omegaconf import OmegaConf
from tiny import CONF_DIR

from seglab.config.spec import BoundaryOptions, resolve_spec
from seglab.config.trust import HYDRA_CALLBACKS, TARGETS
from seglab.config.upgrade import MOVED_TARGETS, upgrade_config, upgrade_targets
from seglab.engine.checkpoints import CHECKPOINT_KEY, load_checkpoint
from seglab.task_modes import Multiclass
from seglab.workflows.build import build_inferer


@pytest.mark.parametrize("old", sorted(MOVED_TARGETS))
def test_every_moved_target_is_trusted_and_importable(old: str) -> None:
    new = MOVED_TARGETS[old]
    assert new in TARGETS | HYDRA_CALLBACKS
    assert get_object(new).__name__ == old.rsplit(".", 1)[1]


def test_upgrade_renames_nested_targets_and_keeps_the_rest() -> None:
    config = {
        "inference": {"_target_": "seglab.inference.Inferer", "mode": "whole"},
        "callbacks": [{"_target_": "seglab.callbacks.RunSummary"}, {"_target_": "x.Y"}],
    }
    assert upgrade_targets(config) == {
        "inference": {"_target_": "seglab.inference.inferer.Inferer", "mode": "whole"},
        "callbacks": [{"_target_": "seglab.engine.callbacks.RunSummary"}, {"_target_": "x.Y"}],
    }


def test_a_checkpoint_with_old_paths_loads_with_todays(tmp_path: Path) -> None:
    config = {
        "scheduler": {"_target_": "seglab.schedulers.poly", "_partial_": True},
        "callbacks": {"summary": {"_target_": "seglab.callbacks.RunSummary"}},
    }
    path = tmp_path / "old.ckpt"
    torch.save({CHECKPOINT_KEY: {"config": config}, "state_dict": {}}, path)
    stored = load_checkpoint(path)[CHECKPOINT_KEY]["config"]
    assert stored["scheduler"]["_target_"] == "seglab.engine.schedulers.poly"
    assert stored["callbacks"]["summary"]["_target_"] == "seglab.engine.callbacks.RunSummary"


@pytest.fixture
def today(compose, tmp_path: Path) -> dict:
    """Today's train config as a checkpoint stores it (resolved, plain containers)."""
    run = compose("train", f"paths.output_dir={tmp_path}")
    return OmegaConf.to_container(run, resolve=True)


def test_a_config_of_today_is_left_as_it_is(today: dict) -> None:
    assert upgrade_config(copy.deepcopy(today)) == today


# one case per shim: the keys an earlier seglab did not write, and what stands for them
@pytest.mark.parametrize(
    ("removed", "expected"),
    [
        (["mode", "threshold"], {"mode": "multiclass", "threshold": 0.5}),
        (["method"], {"method": {"_target_": "seglab.methods.Supervised"}}),
        (["on_nonfinite"], {"on_nonfinite": "stop"}),
        (["metrics"], {"metrics": {"boundary": {"enabled": True}}}),
        (["inference"], {"inference": {"_target_": "seglab.inference.inferer.Inferer"}}),
    ],
    ids=lambda value: "+".join(value) if isinstance(value, list) else None,
)
def test_a_key_an_earlier_seglab_did_not_write_gets_todays_default(
    today: dict, removed: list[str], expected: dict
) -> None:
    old = copy.deepcopy(today)
    for key in removed:
        del old[key]
    upgraded = upgrade_config(old)
    assert upgraded == today  # today's shipped defaults: what a new run writes

    def contains(node: object, part: object) -> bool:
        if isinstance(part, dict):
            return isinstance(node, dict) and all(contains(node.get(k), v) for k, v in part.items())
        return node == part

    assert contains(upgraded, expected)


def test_inference_options_without_a_target_are_completed(today: dict) -> None:
    """Checkpoints saved before the node named its target hold only its options."""
    old = copy.deepcopy(today)
    old["inference"] = {"tile": 256, "overlap": 0.5}
    node = upgrade_config(old)["inference"]
    assert node["_target_"] == "seglab.inference.inferer.Inferer"
    assert (node["tile"], node["overlap"]) == (256, 0.5)
    assert node["tta"] == today["inference"]["tta"]


def test_a_checkpoint_without_the_newer_keys_builds_its_task(tmp_path: Path, today: dict) -> None:
    """Through `load_checkpoint`, as eval, predict and export read it: the builders then find
    every key without a fallback of their own."""
    old = copy.deepcopy(today)
    for key in ("mode", "threshold", "method", "on_nonfinite", "metrics", "inference"):
        del old[key]
    path = tmp_path / "old.ckpt"
    torch.save({CHECKPOINT_KEY: {"config": old}, "state_dict": {}}, path)
    cfg = OmegaConf.create(load_checkpoint(path)[CHECKPOINT_KEY]["config"])
    assert (cfg.mode, cfg.on_nonfinite) == ("multiclass", "stop")
    assert cfg.method._target_ == "seglab.methods.Supervised"
    spec = resolve_spec(cfg)
    assert spec.boundary == BoundaryOptions(
        today["metrics"]["boundary"]["dilation_ratio"], today["metrics"]["boundary"]["hd95"]
    )
    model = torch.nn.Identity()
    inferer = build_inferer(spec, model)
    # the shipped inference node, read from conf/ rather than through the upgrade
    shipped = OmegaConf.load(CONF_DIR / "inference" / "default.yaml")
    assert inferer.model is model and isinstance(inferer.mode, Multiclass)
    assert (inferer.tile, inferer.overlap, inferer.blend, inferer.tile_batch_size) == (
        shipped.tile,
        shipped.overlap,
        shipped.blend,
        shipped.tile_batch_size,
    )


def _flat(config: dict) -> dict:
    """``config`` as a seglab of before the grouped data options wrote it: every key of
    ``data.loader``, ``data.splits``, ... directly below ``data``."""
    old = copy.deepcopy(config)
    for group in ("loader", "splits", "few_labels", "augment", "layout"):
        old["data"].update(old["data"].pop(group, {}))
    return old


@pytest.mark.parametrize("data", ["synthetic", "folder", "camvid"])
def test_a_checkpoint_with_flat_data_keys_holds_them_in_their_groups(
    compose, tmp_path: Path, data: str
) -> None:
    root = [] if data == "synthetic" else ["data.root=/data"]
    run = compose("train", f"data={data}", *root, f"paths.output_dir={tmp_path}")
    today = OmegaConf.to_container(run, resolve=True)
    old = _flat(today)
    assert (
        "loader" not in old["data"]
        and old["data"]["batch_size"] == today["data"]["loader"]["batch_size"]
    )
    path = tmp_path / "old.ckpt"
    torch.save({CHECKPOINT_KEY: {"config": old}, "state_dict": {}}, path)
    assert load_checkpoint(path)[CHECKPOINT_KEY]["config"] == today


def test_a_saved_run_config_with_flat_data_keys_keeps_its_interpolations(compose) -> None:
    """A run's .hydra/config.yaml is saved unresolved: ``${.seed}`` beside the flat keys and
    ``${data.batch_size}`` elsewhere name the same values once the keys are in their groups."""
    old = {
        "data": {
            "seed": 7,
            "batch_size": 4,
            "num_workers": 0,
            "fold_seed": "${.seed}",
            "labeled_seed": "${.seed}",
            "labeled_fraction": 0.25,
            "crop_size": [32, 48],
            "image_dir": "{split}",
            "root": "/data",
        },
        "method": {"unlabeled_batch_size": "${data.batch_size}", "mean": "${data.mean}"},
    }
    data = upgrade_config(old)["data"]
    assert data["loader"] == {"batch_size": 4, "num_workers": 0}
    assert data["splits"] == {"fold_seed": "${..seed}"}
    assert data["few_labels"] == {"labeled_seed": "${..seed}", "labeled_fraction": 0.25}
    assert data["augment"] == {"crop_size": [32, 48]}
    assert data["layout"] == {"image_dir": "{split}"}
    assert (data["seed"], data["root"]) == (7, "/data")
    assert old["method"]["unlabeled_batch_size"] == "${data.loader.batch_size}"
    assert old["method"]["mean"] == "${data.mean}"
    resolved = OmegaConf.create(old)
    assert resolved.data.splits.fold_seed == 7 and resolved.method.unlabeled_batch_size == 4


def test_the_flat_data_keys_are_the_fields_of_the_settings_of_their_group() -> None:
    """The upgrade's table of moved keys is written out in seglab.config (which imports no
    training stack); it must name each settings class's fields, no more, no fewer."""
    import dataclasses

    from seglab.config.upgrade import DATA_GROUPS
    from seglab.data.labels import FewLabelsSettings
    from seglab.data.layout import LayoutSettings
    from seglab.data.loaders import LoaderSettings
    from seglab.data.splits import SplitSettings
    from seglab.data.transforms import AugmentSettings

    settings = {
        "loader": LoaderSettings,
        "splits": SplitSettings,
        "few_labels": FewLabelsSettings,
        "augment": AugmentSettings,
        "layout": LayoutSettings,
    }
    fields = {group: {f.name for f in dataclasses.fields(kind)} for group, kind in settings.items()}
    assert {group: set(keys) for group, keys in DATA_GROUPS.items()} == fields
