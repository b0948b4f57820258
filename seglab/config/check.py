"""A command line's typos and unset values, refused in one line before a Hydra command runs.

Hydra answers ``optimiser.lr=1e-3`` with "use +optimiser.lr=1e-3", which then trains with the
learning rate unchanged, and leaves a ``???`` value to a traceback from deep inside
``instantiate``. Here the command line is composed as the command will compose it (with the
compose API, on the same config directory and search path), and refused with the closest
existing name (`difflib`) when:

- a key, a config group or a group's option names nothing (``did you mean optimizer.lr?``;
  ``it moved to data.loader.batch_size`` for a key an earlier seglab had elsewhere), or a
  group's option is given as a key's value (``model.encoder=resnet34``);
- a ``+key`` is read by nothing: under a ``_target_`` it must be an argument of that target
  (`seglab.config.target_arguments`); elsewhere seglab reads only the keys its configs define, so a
  new key must be a component of a node whose entries seglab builds one by one (``callbacks``,
  ``logger``) or a value that an interpolation of the config names (``+lr=1e-3
  optimizer.lr=${lr}``);
- a value the command needs is still ``???`` (`seglab.config.unset_values` gives each an example).

A multirun is checked once before any job launches, in each of the variants that
`seglab.config.variants` composes.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable
from typing import Any, NamedTuple

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf

from seglab.config.keys import PERFORMANCE_KEYS
from seglab.config.target_arguments import HYDRA_KEYS, accepted_arguments
from seglab.config.trust import TARGETS, trust_names
from seglab.config.unset_values import MANDATORY, unset_value
from seglab.config.upgrade import moved_key
from seglab.config.variants import Composer, Line, composing, variants
from seglab.errors import SeglabError

#: How alike (`difflib.SequenceMatcher` ratio) a name must be to be offered as the one meant.
CUTOFF = 0.6
_SHOWN_KEYS = 10
#: The sweeper's search space: its keys are whole keys of the config (``optimizer.lr``).
_SEARCH_SPACE = ["hydra", "sweeper", "params"]
_MISSING = object()
_INTERPOLATION = re.compile(r"\$\{\s*([A-Za-z_][\w.]*)\s*\}")


class _Problem(NamedTuple):
    message: str
    #: the key the message offers instead, if any
    suggestion: str | None = None


def check_command_line(command: str, config_name: str, args: list[str], config_path: str) -> None:
    """Raise `SeglabError` for the first typo or unset value of the Hydra command line
    ``args`` of ``command`` (``seglab-train``), whose ``@hydra.main`` composes ``config_name``
    from ``config_path``. What this cannot judge is left to Hydra, which reports it as ever."""
    from hydra._internal.utils import get_args_parser

    parsed = get_args_parser().parse_args(args)
    flags = ("help", "hydra_help", "cfg", "info", "shell_completion", "experimental_rerun")
    # config_dir adds a search path: composed here the config could differ
    if any(getattr(parsed, flag) for flag in flags) or parsed.config_dir:
        return
    config_path = parsed.config_path or config_path
    if not os.path.isabs(config_path) or not os.path.isdir(config_path):
        return
    try:
        overrides = OverridesParser.create().parse_overrides(parsed.overrides)
    except Exception:  # Hydra reports a malformed override itself, with its own message
        return
    if not parsed.multirun and any(o.is_sweep_override() for o in overrides):
        return  # Hydra says how to sweep or quote it
    with composing(config_path, parsed.config_name or config_name) as composer:
        for variant in variants(composer, overrides, parsed.multirun):
            problem = _check_variant(composer, variant.lines, command)
            if problem is None:
                continue
            if any(problem.message.startswith(line.origin) for line in variant.options):
                raise SeglabError(problem.message)  # the option itself is wrong
            jobs = " ".join(line.text for line in variant.options)
            raise SeglabError(problem.message + (f" (in the jobs with {jobs})" if jobs else ""))


def _check_variant(composer: Composer, lines: list[Line], command: str) -> _Problem | None:
    parsed = [(OverridesParser.create().parse_override(line.text), line) for line in lines]
    groups = [(o, line) for o, line in parsed if composer.is_group(o)]
    values = [(o, line) for o, line in parsed if not composer.is_group(o)]
    for override, line in groups:
        problem = _group_problem(composer, override, line)
        if problem is not None:
            return problem
    for override, line in values:
        problem = _option_as_value_problem(composer, override, line)
        if problem is not None:
            return problem
    cfg = composer.compose(lines)
    added = any(o.is_add() or o.is_force_add() for o, _ in values)
    if cfg is not None and not added:  # every key exists: only an unset value is left
        return _missing_problem(OmegaConf.to_container(cfg, resolve=False), command, set())
    # the keys the command line may name: those of the config its groups choose
    base = composer.compose([line for _, line in groups])
    if base is None:
        return None  # a problem Hydra reports
    base_tree = OmegaConf.to_container(base, resolve=False)
    if cfg is None:
        typo = _key_problem(base, base_tree, values)
        missing = _missing_problem(base_tree, command, {o.key_or_group for o, _ in values})
        if missing is not None and (typo is None or typo.suggestion not in MANDATORY):
            return missing
        return typo  # None: Hydra reports it
    tree = OmegaConf.to_container(cfg, resolve=False)
    problem = _new_key_problem(cfg, tree, base_tree, values)
    return problem or _missing_problem(tree, command, set())


def _group_problem(composer: Composer, override: Override, line: Line) -> _Problem | None:
    """An override of a config group that does not exist, or of an option it does not have."""
    group = override.key_or_group
    if not composer.has_group(group):
        fixed = _closest(group.split("/"), composer.subgroups)
        if fixed is not None and composer.has_group("/".join(fixed)):
            meant = "/".join(fixed)
            return _Problem(f"{line.origin}: no config group {group}; did you mean {meant}?", meant)
        top = ", ".join(composer.subgroups([]))
        return _Problem(f"{line.origin}: no config group {group}; the groups are: {top}")
    if override.is_delete():
        return None
    value = override.value()
    chosen = value if isinstance(value, list) else [value]
    options = composer.options(group)
    listed = ", ".join(options)
    for option in chosen:
        if option is None:  # Hydra's answer is a ValueError traceback
            return _Problem(
                f"{line.origin}: config group {group} takes one of its options, not null "
                f"(options: {listed})"
            )
        if not isinstance(option, str) or option in options:
            continue
        close = difflib.get_close_matches(option, options, n=1, cutoff=CUTOFF)
        meant = f"did you mean {group}={close[0]}? " if close else ""
        return _Problem(
            f"{line.origin}: config group {group} has no option {option}; {meant}"
            f"(options: {listed})",
            f"{group}={close[0]}" if close else None,
        )
    return None


def _option_as_value_problem(composer: Composer, override: Override, line: Line) -> _Problem | None:
    """``model.encoder=resnet34``: the option of config group ``model/encoder`` meant, given
    as the value of the node the group fills. Hydra puts the string in place of the node, and
    the run fails later on an attribute of a string."""
    group = override.key_or_group.replace(".", "/")
    value = override.value()
    if override.is_delete() or not isinstance(value, str) or not composer.has_group(group):
        return None
    options = composer.options(group)
    close = (
        value
        if value in options
        else next(iter(difflib.get_close_matches(value, options, 1, CUTOFF)), None)
    )
    if close is None:
        return None
    return _Problem(
        f"{line.origin}: {override.key_or_group} holds the options of config group {group}; "
        f"did you mean {group}={close}?",
        f"{group}={close}",
    )


def _node(tree: Any, parts: list[str]) -> Any:
    """The value at ``parts`` of a container, `_MISSING` where there is none."""
    for part in parts:
        if isinstance(tree, dict) and part in tree:
            tree = tree[part]
        elif isinstance(tree, list) and part.isdigit() and int(part) < len(tree):
            tree = tree[int(part)]
        else:
            return _MISSING
    return tree


def _target_of(cfg: DictConfig, node: Any) -> Callable[..., Any] | None:
    """The callable a node's ``_target_`` names, if seglab trusts it to be imported.

    Only seglab's own targets and ``trusted_targets`` are imported here: importing runs a
    module's code, and a config from a file is checked for trust only later.
    """
    target = node.get("_target_") if isinstance(node, dict) else None
    if not isinstance(target, str) or "${" in target:
        return None
    if target not in TARGETS and target not in trust_names(cfg.get("trusted_targets")):
        return None
    from hydra.utils import get_object

    try:
        return get_object(target)
    except Exception:  # instantiating it says why it cannot be found
        return None


def _arguments(cfg: DictConfig, tree: Any, parts: list[str]) -> frozenset[str] | None:
    """The keys the target of the node at ``parts`` reads, None for any or for no target."""
    target = _target_of(cfg, _node(tree, parts))
    if target is None:
        return None
    accepted = accepted_arguments(target)
    if accepted is not None and parts == ["trainer"]:
        accepted |= frozenset(PERFORMANCE_KEYS)  # read by seglab, not by Lightning
    return accepted


def _children(cfg: DictConfig, tree: Any) -> Callable[[list[str]], list[str] | None]:
    """The names one level below a path: a node's keys and its target's arguments."""

    def children(parts: list[str]) -> list[str] | None:
        node = _node(tree, parts)
        if not isinstance(node, dict):
            return None
        arguments = _arguments(cfg, tree, parts) or frozenset()
        return list(node) + sorted(arguments - set(node) - HYDRA_KEYS)

    return children


def _closest(
    parts: list[str], children: Callable[[list[str]], list[str] | None]
) -> list[str] | None:
    """``parts`` with each part that names nothing replaced by the most alike name at its level,
    None where some part has none alike; below a value (no children) parts stay as they are."""
    fixed: list[str] = []
    for index, part in enumerate(parts):
        names = children(fixed)
        if names is None:
            return fixed + parts[index:]
        if part not in names:
            close = difflib.get_close_matches(part, names, n=1, cutoff=CUTOFF)
            if not close:
                return None
            part = close[0]
        fixed.append(part)
    return fixed


def _level(tree: Any, parts: list[str], children: Callable[[list[str]], list[str] | None]) -> str:
    """The keys at the level where ``parts`` first names nothing, for a message."""
    fixed: list[str] = []
    for part in parts:
        names = children(fixed) or []
        node = _node(tree, fixed)
        if isinstance(node, list) and fixed:
            key = ".".join(fixed)
            if not node:
                return f"{key} is an empty list"
            return f"{key} is a list of {len(node)}: {key}.0 to {key}.{len(node) - 1}"
        if part not in names:
            # Hydra's settings are not the command's: leave them out of the top level
            hidden = HYDRA_KEYS | ({"hydra"} if not fixed else set())
            shown = [name for name in names if name not in hidden]
            if not shown:
                return f"{'.'.join(fixed)} takes no keys"
            more = len(shown) - _SHOWN_KEYS
            listed = ", ".join(shown[:_SHOWN_KEYS]) + (f" and {more} more" if more > 0 else "")
            where = f"the keys of {'.'.join(fixed)}" if fixed else "the top-level keys"
            return f"{where} are: {listed}"
        fixed.append(part)
    return ""


def _suggestion(cfg: DictConfig, tree: Any, parts: list[str], origin: str, what: str) -> _Problem:
    """``what`` is wrong with the key at ``parts``: where it moved to (`moved_key`), else the
    closest key, else the keys at its level."""
    moved = moved_key(".".join(parts))
    if moved is not None and _node(tree, moved.split(".")) is not _MISSING:
        return _Problem(f"{origin}: {what}; it moved to {moved}", moved)
    children = _children(cfg, tree)
    fixed = _closest(parts, children)
    if fixed is None or fixed == parts:
        return _Problem(f"{origin}: {what}; {_level(tree, parts, children)}")
    key = ".".join(fixed)
    if _node(tree, fixed) is _MISSING:  # an argument of a target, not in the config
        return _Problem(f"{origin}: {what}; did you mean +{key}? (added with +)", key)
    return _Problem(f"{origin}: {what}; did you mean {key}?", key)


def _key_problem(
    cfg: DictConfig, tree: Any, values: list[tuple[Override, Line]]
) -> _Problem | None:
    """The first override of a key that is not in the config (``+`` adds one, ``++`` may)."""
    added: list[list[str]] = []
    for override, line in values:
        parts = override.key_or_group.split(".")
        if override.is_add() or override.is_force_add():
            added.append(parts)
            continue
        if any(parts[: len(prefix)] == prefix for prefix in added):
            continue
        if _node(tree, parts) is not _MISSING:
            continue
        if parts[:3] == _SEARCH_SPACE and len(parts) > 3:  # its keys hold dots
            swept = ".".join(parts[3:])
            return _Problem(
                f"{line.origin}: a key of the search space cannot be set by its path; give "
                f"the sweep itself, e.g. -m {swept}={line.origin.partition('=')[2]}",
                swept,
            )
        parent = _node(tree, parts[:-1])
        if parent is not _MISSING and not isinstance(parent, dict | list):
            return None  # a child of a value: Hydra says so
        arguments = _arguments(cfg, tree, parts[:-1]) or frozenset()
        if isinstance(parent, dict) and parts[-1] in arguments:
            return _Problem(
                f"{line.origin}: {override.key_or_group} is not in the config; add it with "
                f"+{line.origin.lstrip('~')} (an argument of {_node(tree, parts[:-1])['_target_']})"
            )
        return _suggestion(cfg, tree, parts, line.origin, f"no key {override.key_or_group}")
    return None


def _new_key_problem(
    cfg: DictConfig, tree: Any, base_tree: Any, values: list[tuple[Override, Line]]
) -> _Problem | None:
    """The first key that ``+`` or ``++`` adds and nothing reads."""
    references = _references(tree)
    for override, line in values:
        if not (override.is_add() or override.is_force_add()):
            continue
        parts = override.key_or_group.split(".")
        if parts[0] == "hydra":
            continue  # Hydra's own settings are Hydra's to check
        new = next(
            (i for i in range(len(parts)) if _node(base_tree, parts[: i + 1]) is _MISSING), None
        )
        if new is None:
            continue
        parent, key = parts[:new], parts[: new + 1]
        owner = next((i for i in range(new, -1, -1) if _has_target(tree, parts[:i])), None)
        if owner is not None and owner < new:
            continue  # inside the value of an argument: the target's to check
        if owner == new:
            accepted = _arguments(cfg, tree, parent)
            if accepted is None or parts[new] in accepted | HYDRA_KEYS:
                continue
            target = _node(tree, parent)["_target_"]
            return _suggestion(
                cfg,
                base_tree,
                parts,
                line.origin,
                f"{target} ({'.'.join(parent)}) takes no argument {parts[new]}",
            )
        if _is_collection(_node(base_tree, parent)) and _has_target(tree, key):
            continue
        name = ".".join(key)
        if any(
            ref == name or ref.startswith(f"{name}.") or name.startswith(f"{ref}.")
            for ref in references
        ):
            continue
        return _suggestion(cfg, base_tree, parts, line.origin, f"nothing reads {name}")
    return None


def _has_target(tree: Any, parts: list[str]) -> bool:
    node = _node(tree, parts)
    return isinstance(node, dict) and "_target_" in node


def _is_collection(node: Any) -> bool:
    """A node whose entries are all components that seglab builds one by one (``callbacks``)."""
    return isinstance(node, dict) and all(
        isinstance(value, dict) and "_target_" in value for value in node.values()
    )


def _references(tree: Any) -> set[str]:
    """The keys that the config's interpolations (``${optimizer.lr}``) name."""
    found: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str):
            found.update(_INTERPOLATION.findall(node))
    return found


def _missing_problem(tree: Any, command: str, given: set[str]) -> _Problem | None:
    unset = unset_value(tree, command, given)
    return None if unset is None else _Problem(*unset)
