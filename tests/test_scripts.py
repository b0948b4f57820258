"""The scripts under scripts/ stand alone: each imports seglab and libraries, never another
script, and composes a config only through seglab's own `compose_config`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
#: What a script could import another script as: its file name, or a folder of scripts.
SCRIPT_NAMES = frozenset(
    path.stem for path in SCRIPTS.rglob("*.py") if path.stem != "__init__"
) | frozenset(path.name for path in SCRIPTS.rglob("*") if path.is_dir())
#: Hydra's own composition, which the scripts reach through `seglab.workflows.mounting`.
HYDRA_COMPOSE = frozenset(
    {"compose", "initialize", "initialize_config_dir", "initialize_config_module"}
)


def imported_modules(tree: ast.AST) -> list[str]:
    """Every module ``tree`` imports, at any depth; a relative import (``from . import x``)
    reads as ``.`` followed by its module."""
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append("." * node.level + (node.module or ""))
    return found


def script_imports(tree: ast.AST, names: frozenset[str]) -> list[str]:
    """The imports of ``tree`` that name a script (or a folder of them) rather than a package:
    relative ones, and those whose first part is one of ``names``."""
    return [
        module
        for module in imported_modules(tree)
        if module.startswith(".") or module.split(".")[0] in names
    ]


def hydra_compose_imports(tree: ast.AST) -> list[str]:
    """The names of Hydra's composition API that ``tree`` imports."""
    return [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "hydra"
        for alias in node.names
        if alias.name in HYDRA_COMPOSE
    ]


def _scripts() -> list[Path]:
    return sorted(SCRIPTS.rglob("*.py"))


def _tree(path: Path) -> ast.AST:
    return ast.parse(path.read_text(), filename=str(path))


@pytest.mark.parametrize("path", _scripts(), ids=lambda path: str(path.relative_to(SCRIPTS)))
def test_no_script_imports_another(path: Path) -> None:
    """Code two scripts share belongs in the package, where it is tested and installed."""
    assert not script_imports(_tree(path), SCRIPT_NAMES)


@pytest.mark.parametrize("path", _scripts(), ids=lambda path: str(path.relative_to(SCRIPTS)))
def test_scripts_compose_configs_through_seglab(path: Path) -> None:
    """`seglab.workflows.mounting.compose_config` composes from conf/ as the commands do."""
    assert not hydra_compose_imports(_tree(path))


def test_the_import_check_sees_a_script_imported() -> None:
    tree = ast.parse(
        "import os\nfrom benchmark import spread\nimport seglab.workflows.build\n"
        "def f():\n    from .model_table import machine\n    import studies.holdout_check\n"
    )
    names = frozenset({"benchmark", "studies"})
    assert script_imports(tree, names) == ["benchmark", ".model_table", "studies.holdout_check"]
    assert "benchmark" in SCRIPT_NAMES and "benchmarks" in SCRIPT_NAMES


def test_the_compose_check_sees_hydra_composition() -> None:
    tree = ast.parse(
        "from hydra import compose, initialize_config_dir\nfrom hydra.utils import instantiate\n"
    )
    assert hydra_compose_imports(tree) == ["compose", "initialize_config_dir"]
