"""`lem fuse`."""

from __future__ import annotations

from pathlib import Path

import click

P = click.Path(path_type=Path)


@click.command()
@click.option("--model", required=True, help="Base model: MLX directory or hub id.")
@click.option("--adapter", required=True, type=P, help="Adapter directory (e.g. OUT/adapter).")
@click.option("--out", required=True, type=P, help="Output model directory.")
@click.option("--dequantize", is_flag=True, help="Store a quantized base's weights unquantized.")
@click.option("--gguf", "export_gguf", is_flag=True, help="Also write OUT/model.gguf (llama).")
def fuse(model: str, adapter: Path, out: Path, dequantize: bool, export_gguf: bool) -> None:
    """Fuse an adapter into its base model: a standalone model directory mlx-lm loads.

    \b
    Writes OUT (config, weights, tokenizer with its chat template, manifest.json).
    Example:  lem fuse --model mlx/path/to/base --adapter runs/ethics/adapter --out fused
    """
    from lem.fuse import fuse as run

    click.echo(str(run(model, adapter, out, dequantize=dequantize, export_gguf=export_gguf)))
