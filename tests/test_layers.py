"""The package's import structure, read from the source: commands on top, shared foundations
at the bottom, no new import cycle, no private name taken from another module."""

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
