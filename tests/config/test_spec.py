"""The run spec: each fact of a config read once, and a bad value refused before any build."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf

from seglab.config.keys import PERFORMANCE_KEYS
from seglab.config.spec import NONFINITE_ACTIONS, Performance, resolve_spec
from seglab.errors import SeglabError


@pytest.fixture
def train(compose, tmp_path: Path) -> Callable[..., DictConfig]:
    """The train config with ``overrides``, writing nowhere but ``tmp_path``."""
    return lambda *overrides: compose("train", f"paths.output_dir={tmp_path}", *overrides)


@pytest.fixture
def train_config(train) -> DictConfig:
    return train()


def test_the_shipped_train_config_resolves(train_config: DictConfig) -> None:
    spec = resolve_spec(train_config)
    assert (spec.mode.name, spec.mode.threshold) == ("multiclass", 0.5)
    assert spec.method == "seglab.methods.Supervised"
    assert spec.nonfinite == "stop"
    assert spec.boundary is not None
    assert spec.boundary.dilation_ratio == train_config.metrics.boundary.dilation_ratio
    assert spec.config is train_config


def test_trainer_arguments_leave_out_seglab_options(train) -> None:
    cfg = train(
        "trainer.channels_last=true",
        "trainer.float32_matmul_precision=medium",
        "trainer.compile={mode: reduce-overhead}",
    )
    spec = resolve_spec(cfg)
    assert spec.performance == Performance(True, "medium", {"mode": "reduce-overhead"})
    assert not set(spec.trainer) & set(PERFORMANCE_KEYS)
    assert spec.trainer.max_epochs == cfg.trainer.max_epochs
    assert set(cfg.trainer) - set(spec.trainer) == set(cfg.trainer) & set(PERFORMANCE_KEYS)


def test_a_config_without_a_trainer_has_none(compose) -> None:
    spec = resolve_spec(compose("data_stats"))
    assert spec.trainer is None
    assert spec.performance == Performance()


def test_boundary_is_off_for_multilabel(train) -> None:
    cfg = train("data=synthetic_multilabel", "mode=multilabel", "loss=bce")
    assert resolve_spec(cfg).boundary is None
    assert cfg.metrics.boundary.enabled is True


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["on_nonfinite=ignore"], r"on_nonfinite=ignore must be one of: stop, skip"),
        (["mode=sometimes"], r"mode=sometimes is not one of"),
        (
            ["data=synthetic_binary", "mode=binary", "loss=bce", "method=mean_teacher"],
            r"method._target_=\S*MeanTeacher fits mode=multiclass only.*use method=supervised",
        ),
        (["+metrics.boundary.width=3"], r"metrics.boundary.width is not an option"),
    ],
)
def test_bad_values_are_refused_naming_the_key(train, overrides: list[str], message: str) -> None:
    with pytest.raises(SeglabError, match=message):
        resolve_spec(train(*overrides))


def test_class_weights_replace_only_median_frequency(train) -> None:
    key = "loss.losses.ce.class_weights"
    cfg = train(f"{key}=median_frequency")
    spec = resolve_spec(cfg)
    assert spec.pending_class_weights == [key]
    weights = [0.5, 2.0, 1.0, 3.0][: cfg.data.num_classes]
    resolved = spec.with_class_weights(weights)
    assert OmegaConf.select(resolved.config, key) == weights
    assert resolved.pending_class_weights == []
    # the spec it came from is left as it was
    assert OmegaConf.select(cfg, key) == "median_frequency"
    assert resolved.with_class_weights([9.0]) is resolved


def test_the_guard_takes_its_actions_from_the_spec() -> None:
    from seglab.engine.nonfinite import NonFiniteGuard

    for action in NONFINITE_ACTIONS:
        assert NonFiniteGuard(action).action == action
