"""Fixtures shared by the test modules: Hydra composition of conf/, console entry points run in
this process, and the CamVid folder.

One compute thread per test worker (and per process a test starts), so that the two pytest
workers share the cores instead of fighting over them.
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import DictConfig
from tiny import CONF_DIR, run_here

torch.set_num_threads(1)

#: names another CamVid folder than the one beside the checkout
CAMVID_ROOT_ENV = "SEGLAB_CAMVID_ROOT"
#: set to 1 by .ci/run: there the CamVid tests must run, never skip
CI_ENV = "SEGLAB_CI"

Compose = Callable[..., DictConfig]
Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture(autouse=True)
def keep_torch_determinism():
    """An in-process run with ``trainer.deterministic=true`` switches torch's deterministic
    algorithms on for the whole process; later tests get the setting they started with."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    yield
    torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


@pytest.fixture(scope="session")
def compose() -> Compose:
    """``compose(config, *overrides)``: ``conf/<config>.yaml`` composed as the entry points
    compose it; ``return_hydra_config=True`` keeps the ``hydra`` node that ``${hydra:...}``
    interpolations read."""

    def composed(config: str, *overrides: str, return_hydra_config: bool = False) -> DictConfig:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return hydra_compose(
                config, overrides=list(overrides), return_hydra_config=return_hydra_config
            )

    return composed


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """``cli(main, *args, cwd=folder)``: a console entry point run in this process (no
    interpreter start-up) from ``folder``, as ``tiny.run_here`` runs it; gives its exit code,
    stdout and stderr. The test stays in ``folder`` afterwards."""

    def run(main: Callable[[], None], *args: str, cwd: Path) -> tuple[int, str, str]:
        monkeypatch.chdir(cwd)
        code = run_here(main, *args, cwd=cwd)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture(scope="session")
def camvid_root() -> Path:
    """The CamVid folder, as given (a symlink stays one): ``$SEGLAB_CAMVID_ROOT``, else
    ``../shared/data/camvid`` beside the checkout, where seglab looks when ``data.root`` is unset.

    Without it the test skips, naming the folder; under ``SEGLAB_CI=1`` it fails instead, since
    the CI machine always has it and a run that skipped the real-data tests must not pass.
    """
    default = CONF_DIR.parents[1] / "shared" / "data" / "camvid"
    root = Path(os.environ.get(CAMVID_ROOT_ENV) or default)
    if (root / "train").is_dir():
        return root
    if os.environ.get(CI_ENV) == "1":
        pytest.fail(
            f"{CI_ENV}=1 and CamVid is not in {root} (no train/ folder): CI must run the CamVid "
            f"tests; put the data there or set {CAMVID_ROOT_ENV}=<folder>",
            pytrace=False,
        )
    pytest.skip(
        f"CamVid is not in {root} (no train/ folder); set {CAMVID_ROOT_ENV}=<folder> to run "
        "these tests (seglab-data download camvid fetches it)"
    )
