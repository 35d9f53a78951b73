"""Typed frozen dataclasses from nested dicts (parsed TOML, a checkpoint's JSON), strictly.

Unknown keys and values of the wrong type are errors that name the file and the key. Shared by the run
configuration (``training.config``) and the checkpoint reader (``models.checkpoint``), which rebuilds a
model from its own sections of a stored config without the training stack.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file and key."""


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    hint = typing.get_origin(annotation)
    if annotation is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if annotation in (int, str, bool) and type(value) is annotation:
        return value
    if hint is tuple and isinstance(value, (list, tuple)):
        (item_type, _) = typing.get_args(annotation)
        return tuple(_coerce(v, item_type, where) for v in value)
    if hint in (typing.Union, types.UnionType):
        for option in typing.get_args(annotation):
            if option is type(None) and value is None:
                return None
            try:
                return _coerce(value, option, where)
            except ConfigError:
                continue
    raise ConfigError(f"{where}: expected {getattr(annotation, '__name__', annotation)}, got {_short(value)}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def build_dataclass(cls: Any, table: dict[str, Any], where: str) -> Any:
    """An instance of dataclass ``cls`` from ``table``; nested dataclass fields from nested tables."""
    if not isinstance(table, dict):  # a checkpoint's JSON can hold anything where a table belongs
        raise ConfigError(f"{where}: expected a table, got {_short(table)}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(known))}")
    values = {}
    for name, value in table.items():
        if dataclasses.is_dataclass(hints[name]):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.{name}: expected a table, got {_short(value)}")
            values[name] = build_dataclass(hints[name], value, f"{where}.{name}")
        else:
            values[name] = _coerce(value, hints[name], f"{where}.{name}")
    return cls(**values)
