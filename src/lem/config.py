"""Settings: defaults < experiment file (`lem.toml`) < flags, merged and checked in one place.

Each stage declares its settings once, as a dataclass whose fields are made with `setting()`:
the default, the help text and the checks (`min`, `gt`, `choices`, ...) live on the field.
From that one declaration:

- `resolve` overlays a table of the experiment file and then the flags the user actually
  gave, checking names and types (a typo in lem.toml is an error, not an ignored key)
  and every field's checks, naming the flag or the file and key at fault;
- `cli_options` generates the command's click options, each help line ending with the
  default it shows.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from lem.errors import LemError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

T = TypeVar("T")
_MUTABLE = (list, dict)


def setting(
    default: Any = None,
    help: str = "",
    *,
    min: float | None = None,
    gt: float | None = None,
    below: float | None = None,
    choices: Sequence[str] | None = None,
    special: Sequence[Any] = (),
    shown: str | None = None,
    flag: str | None = None,
    cli: bool = True,
) -> Any:
    """A settings field with its help text and checks (applied to non-None values).

    `min`: value >= min; `gt`: value > gt; `below`: value < below; `choices`: one of them;
    `special`: values allowed besides those rules (-1 for "all"); `shown`: the default as
    the help line shows it; `flag`: the option name when it is not `--field-name`;
    `cli=False`: no option (set in lem.toml or by the caller only).
    """
    meta = {"help": help, "min": min, "gt": gt, "below": below, "choices": choices}
    meta |= {"special": tuple(special), "shown": shown, "flag": flag, "cli": cli}
    if isinstance(default, _MUTABLE):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def read_toml(path: str | Path) -> dict:
    """Parse an experiment file; one-line error naming the file and line on bad TOML."""
    from lem.store import read_text

    path = Path(path)
    if path.is_dir():
        raise LemError(f"{path}: is a directory; give the experiment file (lem.toml) inside it")
    if not path.is_file():
        raise LemError(f"{path}: experiment file not found (create one with `lem init`)")
    try:
        return tomllib.loads(read_text(path))
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


def flag_name(f: dataclasses.Field) -> str:
    """The command-line option of a settings field: `--max-tokens` for `max_tokens`."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def resolve(
    cls: type[T],
    file_values: Mapping[str, Any] | None = None,
    flags: Mapping[str, Any] | None = None,
    where: str = "settings",
) -> T:
    """Build `cls` from its defaults, then `file_values`, then `flags` (None flags are unset).

    Every value is type-checked and then checked against its field's rules; an error names
    the flag (`--iters`) or the file and key (`lem.toml [train]: iters`) it came from.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for source, mapping in (("file", file_values or {}), ("option", flags or {})):
        for key, value in mapping.items():
            name = key.replace("-", "_")
            if name not in fields:
                if source == "option":
                    raise TypeError(f"{cls.__name__} has no setting {name!r}")  # a lem bug
                known = ", ".join(sorted(fields))
                raise LemError(f"{where}: unknown setting {key!r}; known: {known}")
            if value is None and source == "option":
                continue
            label = flag_name(fields[name]) if source == "option" else f"{where}: {key}"
            values[name] = _check_type(value, hints[name], label)
            origin[name] = label
    settings = cls(**values)
    for f in dataclasses.fields(cls):
        label = origin.get(f.name, f"{where}: {f.name} (default)")
        problem = field_problem(f, getattr(settings, f.name))
        if problem:
            raise LemError(f"{label} {problem}")
    return settings


def check(settings: Any, where: str) -> None:
    """Check every field of a settings object against its rules (built without `resolve`)."""
    for f in dataclasses.fields(settings):
        problem = field_problem(f, getattr(settings, f.name))
        if problem:
            raise LemError(f"{where}: {f.name} {problem}")


def field_problem(f: dataclasses.Field, value: Any) -> str | None:
    """What is wrong with `value` under the field's rules, as a phrase, or None."""
    meta = f.metadata
    if value is None or value in meta.get("special", ()) or isinstance(value, bool):
        return None
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        return f"must be one of {', '.join(choices)}; got {value!r}"
    if not isinstance(value, (int, float)):
        return None
    also = " (or " + ", ".join(map(str, meta["special"])) + ")" if meta.get("special") else ""
    if meta.get("min") is not None and value < meta["min"]:
        return f"must be at least {meta['min']}{also}, got {value}"
    if meta.get("gt") is not None and value <= meta["gt"]:
        return f"must be more than {meta['gt']}{also}, got {value}"
    if meta.get("below") is not None and value >= meta["below"]:
        return f"must be below {meta['below']}, got {value}"
    return None


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


# ---------------------------------------------------------------- command-line options


def _shown_default(f: dataclasses.Field) -> str:
    if f.metadata.get("shown") is not None:
        return f.metadata["shown"]
    default = f.default if f.default is not dataclasses.MISSING else None
    if isinstance(default, bool):
        return "on" if default else "off"
    return "none" if default is None else str(default)


def _click_type(f: dataclasses.Field, hint: Any) -> Any:
    import click

    if f.metadata.get("choices"):
        return click.Choice(list(f.metadata["choices"]))
    hints = [
        h for h in (typing.get_args(hint) if _is_union(hint) else (hint,)) if h is not type(None)
    ]
    base = typing.get_origin(hints[0]) or hints[0]
    if base is Path:
        return click.Path(path_type=Path)
    return base


def cli_options(cls: type, skip: Sequence[str] = ()) -> Callable[[Callable], Callable]:
    """Decorate a click command with one option per settings field (not those in `skip`).

    Options default to None, so only flags the user gave override the file and defaults.
    """
    import click

    hints = typing.get_type_hints(cls)

    def decorate(command: Callable) -> Callable:
        for f in reversed(dataclasses.fields(cls)):
            hint = hints[f.name]
            if f.name in skip or not f.metadata.get("cli", True):
                continue
            if typing.get_origin(hint) in (list, dict) or hint in (list, dict):
                continue
            text = f"{f.metadata.get('help', '')} [{_shown_default(f)}]".strip()
            name = flag_name(f)
            if hint is bool:
                pair = f"{name}/--no-{name[2:]}"
                command = click.option(pair, f.name, default=None, help=text)(command)
            else:
                option = click.option(name, f.name, type=_click_type(f, hint), help=text)
                command = option(command)
        return command

    return decorate
