"""`lem bench`."""

from __future__ import annotations

from pathlib import Path

import click

from lem.errors import LemError


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str] | None:
    """NAME=VALUE options as a dict (None when the option was not given)."""
    if not values:
        return None
    out: dict[str, str] = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise LemError(f"{option} {value}: expected NAME=VALUE")
        if name in out:
            raise LemError(f"{option} {name}: given twice")
        out[name] = rest
    return out


def _data(values: tuple[str, ...], benchmarks: list[str]) -> dict[str, str] | None:
    """`--data FILE` (one benchmark) or `--data NAME=FILE` (per benchmark)."""
    from lem.bench import BENCHMARKS

    if not values:
        return None
    out: dict[str, str] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if sep and name in BENCHMARKS:
            out[name] = path
        elif len(benchmarks) == 1:
            out[benchmarks[0]] = value
        else:
            raise LemError(f"--data {value}: with several benchmarks, write --data NAME=FILE")
    return out


def _list() -> None:
    from lem.bench import BENCHMARKS

    for b in BENCHMARKS.values():
        source = b.hub.describe() if b.hub else "shipped with lem"
        gated = "  (gated: needs HF_TOKEN)" if b.hub and b.hub.gated else ""
        click.echo(f"{b.name:<14} max_tokens {b.max_tokens:<5} {source}{gated}")


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="Experiment file; its [bench] table sets defaults that flags override.",
)
@click.option("--benchmark", "-b", "benchmarks", multiple=True, help="Benchmark (repeatable).")
@click.option(
    "--model",
    "-m",
    "models",
    multiple=True,
    help="NAME=MODEL or NAME=MODEL:adapter=DIR (repeatable); MODEL is a directory or hub id.",
)
@click.option(
    "--data", multiple=True, help="FILE, or NAME=FILE per benchmark: JSONL, CSV or Parquet."
)
@click.option("--limit", type=int, help="A seeded random subset of N items [all].")
@click.option("--seed", type=int, help="Subset seed; also seeds sampling when T > 0 [0].")
@click.option("--out", type=click.Path(path_type=Path), help="Results directory [results].")
@click.option("--temperature", type=float, help="Sampling temperature [0: greedy].")
@click.option("--max-tokens", type=int, help="Answer cap for every benchmark [each its own].")
@click.option("--batch-size", type=int, help="Answers generated together [32].")
@click.option(
    "--overwrite",
    is_flag=True,
    default=None,
    help="Replace results made with a different generation config instead of refusing.",
)
@click.option("--list", "list_only", is_flag=True, help="List the benchmarks and exit.")
def bench(
    config_path: Path | None,
    benchmarks: tuple[str, ...],
    models: tuple[str, ...],
    data: tuple[str, ...],
    list_only: bool,
    **flags,
) -> None:
    """Generate benchmark answers for one or more models, batched and resumable.

    \b
    Writes OUT/<benchmark>_<model>.jsonl, one answer a line (id, benchmark, model,
    prompt, response, finish_reason, tokens, seconds, gen_config), and OUT/manifest.json
    with the item ids, data and model hashes and each pair's full generation config.
    A re-run skips finished ids; a changed config is refused (new --out, or --overwrite).
    Data comes from --data, else the hub (through `datasets`); ethics uses lem's
    shipped evaluation prompts. `lem bench --list` shows each benchmark's source.
    Chat models get their chat template; models without one get "Question: ...\\nAnswer:".
    Examples:
      lem bench -b gsm8k -b truthfulqa --limit 50 --seed 0 \\
        -m base=models/base -m lek=models/base:adapter=adapters/lek
      lem bench -b gsm8k --data gsm8k.jsonl -m smol=$(lem model fetch)
    """
    from lem.bench.runner import BenchSettings, run_bench
    from lem.config import resolve, section

    if list_only:
        _list()
        return
    file_values = section(config_path, "bench")
    chosen = list(benchmarks) or list(file_values.get("benchmarks", []))
    flags |= {
        "benchmarks": list(benchmarks) or None,
        "models": _pairs(models, "--model"),
        "data": _data(data, chosen),
    }
    settings = resolve(
        BenchSettings,
        file_values,
        flags,
        where=f"{config_path} [bench]" if config_path else "bench",
    )
    reports = run_bench(settings)
    click.echo(f"{'benchmark':<14} {'model':<12} {'items':>5} {'new':>5}  {'hit cap':<14} results")
    for r in reports:
        cap = f"{r.hit_cap} ({r.hit_cap / r.items:.0%}) of {r.max_tokens}"
        click.echo(
            f"{r.benchmark:<14} {r.model:<12} {r.items:>5} {r.generated:>5}  {cap:<14} {r.path}"
        )
