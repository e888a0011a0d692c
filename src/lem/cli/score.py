"""`lem score`."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--data",
    multiple=True,
    help="Benchmark items the results were made from: FILE, or NAME=FILE per benchmark "
    "(repeatable). Default: each benchmark's own source (the hub, or shipped data).",
)
@click.option("--judge", help="gemini/<model>, openai/<model> or mlx/<path> for judged benchmarks.")
@click.option("--judge-base-url", help="Server URL for openai/ judges (or a Gemini stand-in).")
@click.option("--concurrency", type=int, help="API judges: requests in flight [8].")
@click.option("--max-retries", type=int, help="API judges: retries of a failed call [4].")
@click.option("--timeout", type=float, help="API judges: seconds per call [120].")
@click.option("--reasks", type=int, help="Follow-ups after a reply that is not a verdict [2].")
@click.option("--out", type=click.Path(path_type=Path), help="Output directory [scores].")
@click.option(
    "--cache", type=click.Path(path_type=Path), help="Verdict cache [$LEM_HOME/verdicts.sqlite]."
)
@click.option("--no-cache", "no_cache", is_flag=True, help="Neither read nor write the cache.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="Experiment file; its [score] table sets defaults that flags override.",
)
def score(
    results: tuple[Path, ...],
    data: tuple[str, ...],
    no_cache: bool,
    config_path: Path | None,
    **flags,
) -> None:
    """Score RESULTS files: GSM8K by exact match, the others with an LLM judge.

    \b
    Writes OUT/<results file name> (one verdict a line) and OUT/manifest.json.
    A verdict the judge fails to give is stored as `unscored` with its reason.
    Verdicts are cached: re-scoring the same content with the same judge is free.
    Example:  lem score results/*.jsonl --data gsm8k=gsm8k.jsonl \\
                --data truthfulqa=tqa.jsonl --judge gemini/gemini-2.0-flash
    """
    from lem.config import resolve, section
    from lem.score import ScoreSettings, parse_data_args
    from lem.score import score as run

    if no_cache:
        flags["use_cache"] = False
    settings = resolve(
        ScoreSettings,
        section(config_path, "score"),
        flags,
        where=f"{config_path} [score]" if config_path else "score",
    )
    report = run(list(results), parse_data_args(data), settings)
    for f in report.files:
        counts = ", ".join(
            f"{metric} {c['ok']} ok" + (f" / {c['unscored']} unscored" if c["unscored"] else "")
            for metric, c in f.counts.items()
        )
        click.echo(f"{f.scores}: {f.benchmark}, {f.items} items: {counts}")
    if report.judge is not None:
        u = report.usage
        cost = f"${report.cost_usd:.4f}" if report.cost_usd is not None else "unknown"
        click.echo(
            f"judge {report.judge}: {u.calls} calls, {u.cached} verdicts from the cache, "
            f"{u.prompt_tokens:,} prompt + {u.completion_tokens:,} completion tokens; "
            f"estimated cost {cost} ({report.cost_note}; an estimate, not a bill)"
        )
    click.echo(str(report.manifest))
