"""Which keys a ``_target_`` reads: the keyword arguments its signature names, following
``**kwargs`` where the target hands them to its parent class.

A ``+key`` under a node with a ``_target_`` reaches the target as a keyword argument. seglab's
own components take options as ``**options`` that they pass to ``super().__init__`` (a
datamodule to `SegmentationDataModule`, a torchvision encoder to `PretrainedEncoder`), so the
parent's arguments are accepted too, as are the keys read from them by name
(``options.get("mode")``). Where ``**kwargs`` go anywhere else (a logger passing them
to its writer), any key may be read and none is refused. The body of ``__init__`` is read with
`ast` to tell these apart: the signature alone cannot.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from functools import cache
from typing import Any

#: Hydra's own keys of a node with a ``_target_``; its target never sees them.
HYDRA_KEYS = frozenset({"_target_", "_partial_", "_convert_", "_recursive_", "_args_"})
#: Methods of ``**kwargs`` that read one named key, not all of them.
_KEY_READS = frozenset({"get", "pop", "setdefault"})


@cache
def accepted_arguments(target: Callable[..., Any]) -> frozenset[str] | None:
    """The keyword arguments ``target`` (a class or function) reads, None for any."""
    if inspect.isclass(target):
        return _class_arguments(target, 0)
    try:
        parameters = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return None
    named = _named(parameters.values())
    var_keyword = _var_keyword(parameters.values())
    if var_keyword is None:
        return named
    use, read = _keyword_use(target, var_keyword)
    return named | read if use in ("ignored", "refused", "read") else None


def _class_arguments(cls: type, start: int) -> frozenset[str] | None:
    """The arguments of the first ``__init__`` at or after ``cls.__mro__[start]``, with those
    of the classes it hands ``**kwargs`` on to."""
    mro = cls.__mro__
    index = next((i for i in range(start, len(mro)) if "__init__" in vars(mro[i])), None)
    if index is None or mro[index] is object:
        return frozenset()
    init = vars(mro[index])["__init__"]
    try:
        parameters = list(inspect.signature(init).parameters.values())[1:]  # without self
    except (TypeError, ValueError):
        return None
    named = _named(parameters)
    var_keyword = _var_keyword(parameters)
    if var_keyword is None:
        return named
    use, read = _keyword_use(init, var_keyword)
    if use in ("ignored", "refused", "read"):
        return named | read
    if use == "parent":
        parent = _class_arguments(cls, index + 1)
        return None if parent is None else named | read | parent
    return None


def _named(parameters: Any) -> frozenset[str]:
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return frozenset(p.name for p in parameters if p.kind in kinds)


def _var_keyword(parameters: Any) -> str | None:
    return next((p.name for p in parameters if p.kind == inspect.Parameter.VAR_KEYWORD), None)


def _keyword_use(function: Callable[..., Any], name: str) -> tuple[str, frozenset[str]]:
    """What ``function`` does with its ``**name``, and the keys it reads from it by name
    (``options.get("mode")``): "ignored" (never looked at), "refused" (only raised on), "read"
    (only single keys read), "parent" (handed to ``super().__init__``, besides such reads) or
    "other" (anything else, a key read by a variable, or no source to read)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError):
        return "other", frozenset()
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    uses, read = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Load):
            use, key = _use(node, parents)
            uses.add(use)
            if key is not None:
                read.add(key)
    if not uses:
        return "ignored", frozenset()
    if uses <= {"refused"}:
        return "refused", frozenset()
    if uses <= {"read", "refused"}:
        return "read", frozenset(read)
    if "other" in uses or "parent" not in uses:
        return "other", frozenset()
    return "parent", frozenset(read)


def _use(name: ast.Name, parents: dict[ast.AST, ast.AST]) -> tuple[str, str | None]:
    """How one reference to the ``**kwargs`` dict uses it, and the key it reads, if one."""
    parent = parents.get(name)
    if isinstance(parent, ast.keyword) and parent.arg is None and _is_super_init(parents[parent]):
        return "parent", None
    key: ast.AST | None = None
    if isinstance(parent, ast.Attribute) and parent.attr in _KEY_READS:
        call = parents.get(parent)
        if isinstance(call, ast.Call) and call.func is parent and call.args:
            key = call.args[0]
    elif isinstance(parent, ast.Subscript) and parent.value is name:
        key = parent.slice
    if key is not None:
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            return "read", key.value
        return "other", None  # a key chosen at run time: any key may be read
    node: ast.AST | None = name
    while node is not None:
        if isinstance(node, ast.Raise):
            return "refused", None
        above = parents.get(node)
        # `if kwargs: raise ...`: a test whose branch only raises
        if isinstance(above, ast.If) and above.test is node:
            refused = all(isinstance(s, ast.Raise) for s in above.body)
            return ("refused" if refused else "other"), None
        node = above
    return "other", None


def _is_super_init(call: ast.AST) -> bool:
    """Whether ``call`` is ``super().__init__(...)`` (or ``super(Cls, self).__init__(...)``)."""
    return (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr == "__init__"
        and isinstance(call.func.value, ast.Call)
        and isinstance(call.func.value.func, ast.Name)
        and call.func.value.func.id == "super"
    )
