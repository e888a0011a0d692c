"""Options several commands share: `--config`, and the one `NAME=VALUE` parser."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import click

from lem.errors import LemError

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="Experiment file (lem.toml): this stage gets what `lem run` would give it; "
    "flags override.",
)

processes_option = click.option(
    "--processes",
    "-n",
    type=click.IntRange(min=1),
    help="Run as N local processes of one MLX ring group (as `mlx.launch --backend ring -n N` "
    "does); across machines, start lem with mlx.launch. [1]",
)


def named_values(
    values: Iterable[str], option: str, known: Iterable[str] | None = None
) -> dict[str, str] | None:
    """`NAME=VALUE` options as a dict; a bare VALUE gets the key "" (one for all).

    A value that is an existing path is bare even if it holds "=". None when not given.
    """
    values = list(values)
    if not values:
        return None
    known = list(known) if known is not None else None
    out: dict[str, str] = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or Path(value).exists():
            name, rest = "", value
        elif not name or not rest:
            raise LemError(f"{option} {value}: expected NAME=VALUE")
        elif known is not None and name not in known:
            raise LemError(f"{option} {value}: unknown name {name!r}; known: {', '.join(known)}")
        if name in out:
            raise LemError(f"{option} {name or value}: given twice")
        out[name] = rest
    return out
