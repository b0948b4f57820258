"""The ``???`` values of conf/ that a command line must give, each with an example: one line
such as "data.root is not set: give the dataset folder, e.g. seglab-train data=folder
data.root=/path/to/data" instead of the ``MissingMandatoryValue`` traceback Hydra ends on."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

#: What each ``???`` of conf/ asks for, and the arguments of an example command that gives it.
MANDATORY = {
    "data.root": ("give the dataset folder", "data=folder data.root=/path/to/data"),
    "ckpt_path": (
        "give the checkpoint to read",
        "ckpt_path=outputs/train/<run>/checkpoints/best.ckpt",
    ),
    "input": ("give the images: a file, a folder or a glob", "input=images/"),
    "output": ("give the file to write", "output=model.onnx"),
}
#: A top-level key whose value stands in for an unset mandatory one.
_INSTEAD = {"ckpt_path": "model_path"}


def unset_value(tree: dict[str, Any], command: str, given: set[str]) -> tuple[str, str] | None:
    """The first ``???`` of the config ``tree`` (a container, unresolved) that ``command``
    would read and the command line does not set (``given``): a message and the key."""
    for key in _unset_keys({k: v for k, v in tree.items() if k != "hydra"}, []):
        if key in given:
            continue
        instead = _INSTEAD.get(key)
        if instead is not None and tree.get(instead, "???") not in (None, "???"):
            continue
        what, example = MANDATORY.get(key, ("give it a value", f"{key}=<value>"))
        alternative = f" (or {instead}=model.onnx)" if instead in tree else ""
        return f"{key} is not set: {what}, e.g. {command} {example}{alternative}", key
    return None


def _unset_keys(node: Any, parts: list[str]) -> Iterator[str]:
    if node == "???":
        yield ".".join(parts)
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _unset_keys(value, [*parts, str(key)])
