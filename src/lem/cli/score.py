"""`lem score`."""

from __future__ import annotations

from pathlib import Path

import click

from lem.cli.options import config_option, named_values
from lem.config import cli_options
from lem.score import ScoreSettings


@click.command()
@click.argument("results", nargs=-1, type=click.Path(path_type=Path))
@config_option
@click.option(
    "--data",
    multiple=True,
    help="Benchmark items the results were made from: FILE, or NAME=FILE per benchmark "
    "(repeatable), in the authors' layout. Default: each benchmark's shipped data, or the hub.",
)
@click.option("--no-cache", "no_cache", is_flag=True, help="Neither read nor write the cache.")
@cli_options(ScoreSettings, skip=("results", "data", "use_cache"))
def score(
    results: tuple[Path, ...],
    data: tuple[str, ...],
    no_cache: bool,
    config_path: Path | None,
    **flags,
) -> None:
    """Score RESULTS files or directories, each benchmark by its own scorers.

    \b
    Exact match (GSM8K), log-likelihood (TruthfulQA MC, ToxiGen classification) and the
    refusal classifier (XSTest, HarmBench, StrongREJECT, the ethics prompts) need no
    judge; judged metrics (TruthfulQA, ToxiGen, Do Not Answer, StrongREJECT's score, the
    ethics rubric) need --judge, and are skipped with a note without one.
    Writes OUT/<results file name> (one verdict a line) and OUT/manifest.json. A verdict
    the judge fails to give is stored as `unscored` with its reason. Verdicts are cached:
    re-scoring the same content with the same judge is free.
    Examples:  lem score results/
               lem score results/*.jsonl --judge gemini/gemini-2.5-flash
               lem score xstest_mine.jsonl --data xstest=xstest_prompts.csv
    """
    from lem.bench import BENCHMARKS
    from lem.experiment import settings_for
    from lem.score import score as run

    flags["results"] = [str(p) for p in results] or None
    flags["data"] = named_values(data, "--data", BENCHMARKS)
    if no_cache:
        flags["use_cache"] = False
    settings = settings_for("score", config_path, flags)
    if not settings.results:
        raise click.UsageError("give RESULTS files or directories, or --config lem.toml")
    report = run(settings)
    for f in report.files:
        counts = ", ".join(
            f"{metric} {c['ok']} ok" + (f" / {c['unscored']} unscored" if c["unscored"] else "")
            for metric, c in f.counts.items()
        )
        click.echo(f"{f.scores}: {f.benchmark}, {f.items} items: {counts}")
    for bench, metrics in report.skipped.items():
        click.echo(f"{bench}: no --judge, so not scored: {', '.join(metrics)}", err=True)
    if report.judge is not None:
        u = report.usage
        cost = f"${report.cost_usd:.4f}" if report.cost_usd is not None else "unknown"
        click.echo(
            f"judge {report.judge}: {u.calls} calls ({u.turns} turns), {u.cached} verdicts "
            f"from the cache, {u.prompt_tokens:,} prompt + {u.completion_tokens:,} completion "
            f"tokens; estimated cost {cost} ({report.cost_note}; an estimate, not a bill)"
        )
    click.echo(str(report.manifest))
