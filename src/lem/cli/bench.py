"""`lem bench`."""

from __future__ import annotations

from pathlib import Path

import click

from lem.bench.runner import BenchSettings
from lem.cli.options import config_option, named_values, processes_option
from lem.config import cli_options
from lem.errors import LemError


def _list() -> None:
    from lem.bench import BENCHMARKS

    for b in BENCHMARKS.values():
        source = "shipped with lem" if b.shipped else b.hub.describe() if b.hub else "--data"
        how = "log-likelihood" if b.answer == "loglik" else f"max_tokens {b.max_tokens}"
        scorers = "+".join(s.name for s in b.scorers)
        click.echo(f"{b.name:<14} {how:<16} {scorers:<16} {source}")


@click.command()
@config_option
@click.option("--benchmark", "-b", "benchmarks", multiple=True, help="Benchmark (repeatable).")
@click.option(
    "--model",
    "-m",
    "models",
    multiple=True,
    help="NAME=MODEL or NAME=MODEL:adapter=DIR (repeatable); MODEL is a directory, hub id "
    "or pypi:<name>.",
)
@click.option(
    "--data",
    multiple=True,
    help="FILE (one benchmark), or NAME=FILE per benchmark, in the benchmark authors' layout "
    "[shipped data, else the hub].",
)
@click.option("--list", "list_only", is_flag=True, help="List the benchmarks and exit.")
@processes_option
@cli_options(BenchSettings, skip=("benchmarks", "models", "data", "limits", "caps"))
def bench(
    config_path: Path | None,
    benchmarks: tuple[str, ...],
    models: tuple[str, ...],
    data: tuple[str, ...],
    list_only: bool,
    processes: int | None,
    **flags,
) -> None:
    """Answer benchmarks with one or more models, batched and resumable.

    \b
    Writes OUT/<benchmark>_<model>.jsonl, one result a line (id, benchmark, model,
    prompt, response, finish_reason, tokens, seconds, gen_config; or, for a
    log-likelihood benchmark, continuations and logprobs), and OUT/manifest.json with
    the item ids, data and model hashes and each pair's full config. A re-run skips
    finished ids; a changed config is refused (new --out, or --overwrite).
    `lem bench --list` shows each benchmark, how it is answered and scored, and its data.
    With -n N (or under mlx.launch) the items are shared out across the processes; the
    results file is the one a single process writes (timings aside).
    Examples:
      lem bench -b xstest -b truthfulqa_mc --limit 100 \\
        -m instruct=pypi:smollm2-135m-instruct -m lek=runs/lek/model
      lem bench -b gsm8k --data gsm8k_test.jsonl -m base=models/base
    """
    from lem.bench import BENCHMARKS
    from lem.bench.runner import check_settings, run_bench
    from lem.distributed import is_primary, launch_if_asked
    from lem.experiment import settings_for

    if list_only:
        _list()
        return
    given = named_values(data, "--data", BENCHMARKS)
    if given and "" in given:
        if len(benchmarks) != 1:
            raise LemError(f"--data {given['']}: with several benchmarks, write --data NAME=FILE")
        given[benchmarks[0]] = given.pop("")
    flags |= {
        "benchmarks": list(benchmarks) or None,
        "models": named_values(models, "--model"),
        "data": given,
    }
    if flags["models"] and "" in flags["models"]:
        raise LemError(f"--model {flags['models']['']}: expected NAME=MODEL")
    settings = settings_for("bench", config_path, flags)
    check_settings(settings)  # bad settings: one error, not one per process
    launch_if_asked(processes)
    reports = run_bench(settings)
    if not is_primary():
        return  # rank 0 reports for the group
    click.echo(f"{'benchmark':<14} {'model':<12} {'items':>5} {'new':>5}  {'hit cap':<16} results")
    for r in reports:
        cap = f"{r.hit_cap} ({r.hit_cap / r.items:.0%}) of {r.max_tokens}" if r.max_tokens else "-"
        click.echo(
            f"{r.benchmark:<14} {r.model:<12} {r.items:>5} {r.generated:>5}  {cap:<16} {r.path}"
        )
        for why, n in r.excluded.items():
            click.echo(f"  {r.benchmark}: {n} items left out ({why})")
