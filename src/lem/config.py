"""Settings: defaults < experiment file (`lem.toml`) < flags, merged in one place.

Each stage declares its settings as a dataclass with defaults. `resolve` overlays one
section of the experiment file and then the flags the user actually gave, checking
names and types so a typo in lem.toml is an error, not a silently ignored key.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from lem.errors import LemError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

T = TypeVar("T")


def read_toml(path: str | Path) -> dict:
    """Parse an experiment file; one-line error naming the file and line on bad TOML."""
    path = Path(path)
    if not path.is_file():
        raise LemError(f"{path}: experiment file not found (create one with `lem init`)")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise LemError(f"{path}: invalid TOML ({e})")


def section(path: str | Path | None, name: str) -> dict:
    """One `[name]` table of an experiment file ({} when no file or no such table)."""
    if path is None:
        return {}
    table = read_toml(path).get(name, {})
    if not isinstance(table, dict):
        raise LemError(f"{path}: [{name}] must be a table")
    return table


def _check_type(value: Any, annotation: Any, where: str) -> Any:
    """Coerce ints to floats where a float is wanted; reject values of the wrong type."""
    hints = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    if value is None and type(None) in hints:
        return None
    for hint in hints:
        origin = typing.get_origin(hint) or hint
        if origin is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if origin is Path and isinstance(value, (str, Path)):
            return Path(value)
        if origin in (list, tuple) and isinstance(value, (list, tuple)):
            return origin(value)
        if origin is dict and isinstance(value, dict):
            return value
        if isinstance(origin, type) and isinstance(value, origin):
            if origin is int and isinstance(value, bool):
                continue
            return value
        if origin is typing.Any:
            return value
    names = " or ".join(getattr(h, "__name__", str(h)) for h in hints)
    raise LemError(f"{where}: expected {names}, got {value!r}")


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def resolve(
    cls: type[T],
    file_values: Mapping[str, Any] | None = None,
    flags: Mapping[str, Any] | None = None,
    where: str = "settings",
) -> T:
    """Build `cls` from its defaults, then `file_values`, then `flags` (None flags are unset)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for source, mapping in (("experiment file", file_values or {}), ("option", flags or {})):
        for key, value in mapping.items():
            name = key.replace("-", "_")
            if name not in fields:
                if source == "option":
                    raise TypeError(f"{cls.__name__} has no setting {name!r}")  # a lem bug
                known = ", ".join(sorted(fields))
                raise LemError(f"{where}: unknown setting {key!r}; known: {known}")
            if value is None and source == "option":
                continue
            values[name] = _check_type(value, hints[name], f"{where}: {key}")
    return cls(**values)


def to_dict(settings: Any) -> dict:
    """A settings dataclass as plain JSON-ready values (paths as strings)."""

    def plain(v: Any) -> Any:
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return {k: plain(v) for k, v in dataclasses.asdict(settings).items()}
