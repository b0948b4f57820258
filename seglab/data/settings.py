"""How one ``data.<group>`` node of a config becomes the frozen settings class that reads it.

A datamodule takes its options in groups (``data.loader``, ``data.splits``, ...), each read by
one dataclass that checks its own values. Hydra hands a group over as a ``DictConfig``; a
Python caller may hand the dataclass itself or a plain dict. Here either becomes the
dataclass, refusing a key the group does not have, or one it needs and is not given, by its
full name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from omegaconf import OmegaConf

Settings = TypeVar("Settings")


def settings_of(kind: type[Settings], value: Settings | Mapping[str, Any], group: str) -> Settings:
    """``value`` (``kind``, or a mapping of its fields) as ``kind``; ``group`` names the node.

    Raises:
        ValueError: naming ``data.<group>.<key>`` for a key ``kind`` has not, or one it needs
            and ``value`` leaves out, and the keys it has.
    """
    if isinstance(value, kind):
        return value
    fields = [field for field in dataclasses.fields(kind) if field.init]  # type: ignore[arg-type]
    names = ", ".join(field.name for field in fields)
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=True)  # type: ignore[assignment]
    if not isinstance(value, Mapping):
        raise ValueError(f"data.{group}={value!r} must be a node of the keys {names}")
    unknown = [key for key in value if key not in {field.name for field in fields}]
    if unknown:
        raise ValueError(f"data.{group}.{unknown[0]} is no key of data.{group}; its keys: {names}")
    for field in fields:
        needed = field.default is dataclasses.MISSING
        if needed and field.default_factory is dataclasses.MISSING and field.name not in value:
            raise ValueError(
                f"data.{group}.{field.name} is not set; give data.{group} all of {names} "
                "(conf/data/ holds their values)"
            )
    return kind(**value)


def normalised(settings: Any, **values: Any) -> None:
    """Set checked or converted ``values`` on a frozen dataclass while it initialises."""
    for key, value in values.items():
        object.__setattr__(settings, key, value)
