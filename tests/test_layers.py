"""The package's import structure, read from the source: commands on top, shared foundations
at the bottom, each package importing only those of lower layers, no import cycle, no private
name taken from another module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "seglab"
#: Modules every layer may use; they import nothing of seglab but each other.
FOUNDATION = frozenset(
    {
        "seglab.errors",
        "seglab.atomic",
        "seglab.extras",
        "seglab.quiet",
        "seglab.config.location",
        "seglab.config.upgrade",
    }
)


#: The packages from the bottom up; a module imports only modules of its own package and of
#: packages in lower layers. The top-level modules of layer 0 are the foundation above.
LAYERS: tuple[frozenset[str], ...] = tuple(
    frozenset(layer)
    for layer in (
        {"errors", "atomic", "extras", "quiet"},
        {"metrics", "models"},
        {"task_modes", "visualization"},
        {"config", "data", "losses"},
        {"methods", "runs", "inference"},
        {"compression", "engine"},
        {"sweeps"},
        {"workflows"},
        {"cli"},
        {"__init__"},
    )
)


def package(module: str) -> str:
    """The first name below ``seglab`` (``engine`` for ``seglab.engine.task``); ``__init__``
    for the package itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer(module: str) -> int:
    return next(i for i, names in enumerate(LAYERS) if package(module) in names)


def upward(edges: dict[str, set[str]]) -> set[tuple[str, str]]:
    """The imports from one package of another that is not in a lower layer."""
    return {
        (name, target)
        for name, targets in edges.items()
        for target in targets
        if package(name) != package(target)
        and layer(name) <= layer(target)
        and not layer(name) == layer(target) == 0
    }


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports(tree: ast.AST) -> list[tuple[str, str | None]]:
    """(module, name) for every seglab import of ``tree``, at any depth; a ``from a import b``
    of a submodule ``b`` counts as importing ``a.b``."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names if alias.name.startswith("seglab")]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("seglab"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.append((sub, None) if sub in MODULES else (node.module, alias.name))
    return found


def graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = {module for module, _ in imports(ast.parse(path.read_text()))}
        edges[name] = {target for target in targets if target in modules and target != name}
    return edges


def cycles(edges: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: set[frozenset[str]] = set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(edges[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.add(frozenset(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


EDGES = graph(MODULES)


def test_only_commands_import_commands() -> None:
    wrong = {
        (name, target)
        for name, targets in EDGES.items()
        for target in targets
        if target.startswith("seglab.cli") and not name.startswith("seglab.cli")
    }
    assert not wrong


def test_every_package_has_a_layer() -> None:
    assert {package(name) for name in MODULES} == set().union(*LAYERS)


def test_packages_import_only_lower_layers() -> None:
    """Commands call workflows, workflows build from the engine, inference, data and models;
    the engine never reaches up for the builders, nor the data for a model."""
    assert not upward(EDGES)


def test_an_upward_import_is_seen() -> None:
    edges = {
        "seglab.engine.task": {"seglab.workflows.build", "seglab.engine.checkpoints"},
        "seglab.workflows.build": {"seglab.engine.task"},
        "seglab.errors": {"seglab.atomic"},
    }
    assert upward(edges) == {("seglab.engine.task", "seglab.workflows.build")}


def test_foundations_import_only_foundations() -> None:
    wrong = {(name, target) for name in FOUNDATION for target in EDGES[name] - FOUNDATION}
    assert not wrong


def test_no_import_cycle() -> None:
    """A cycle makes the order of imports matter and hides which module is the lower one;
    the methods see the task through `seglab.methods.base.TaskView` for this reason."""
    assert not cycles(EDGES)


def test_the_cycle_finder_sees_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == {frozenset("abc")}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_private_name_is_imported_across_modules(name: str) -> None:
    private = [
        f"{module}.{imported}"
        for module, imported in imports(ast.parse(MODULES[name].read_text()))
        if imported and imported.startswith("_") and module != name
    ]
    assert not private
