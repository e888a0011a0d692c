"""`lem generate`."""

from __future__ import annotations

from pathlib import Path

import click

from lem.cli.options import config_option
from lem.config import cli_options
from lem.generate import GenerateSettings


@click.command()
@config_option
@cli_options(GenerateSettings)
def generate(config_path: Path | None, **flags) -> None:
    """Answer the seed prompts with a teacher (the kernel in context); write chat data.

    \b
    Writes OUT/train.jsonl and OUT/valid.jsonl (mlx-lm chat format, split by seed id),
    OUT/rejected.jsonl (what the quality gates dropped, and why) and OUT/manifest.json.
    Raw answers go to OUT/work/ as they arrive: a killed run re-run continues.
    `--teacher reference` uses the answers the lem team wrote for the shipped seeds.
    Examples:  lem generate --teacher reference --out training
               lem generate --teacher gemini/gemini-2.5-flash --out training
    """
    from lem.experiment import settings_for
    from lem.generate import generate as run

    report = run(settings_for("generate", config_path, flags))
    c = report.counts
    click.echo(
        f"kept {c['kept']} of {c['planned']} planned: {c['train']} train "
        f"({c['train_seeds']} seeds), {c['valid']} valid ({c['valid_seeds']} seeds)"
    )
    click.echo(
        f"teacher calls this run: {c['teacher_calls']}; reused answers: {c['reused']}; "
        f"length regenerations: {c['length_regenerations']}"
    )
    dropped = ", ".join(f"{g} {n}" for g, n in c["dropped"].items())
    click.echo(f"dropped: {dropped}")
    if c.get("answer_words"):
        w = c["answer_words"]
        click.echo(f"answer words: {w['min']}-{w['max']} (median {w['median']})")
    for name in ("kernel_ref_hits", "formulaic_openings"):
        if c[name]:
            click.echo(
                f"{name.replace('_', ' ')}: " + ", ".join(f"{k} {v}" for k, v in c[name].items())
            )
    if report.failures:
        ids = ", ".join(f["id"] for f in report.failures[:10])
        more = f" (+{len(report.failures) - 10} more)" if len(report.failures) > 10 else ""
        click.echo(
            f"failed teacher calls: {len(report.failures)}: {ids}{more}; "
            "re-run to ask them again; errors are in the manifest",
            err=True,
        )
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    for path in [*report.files.values(), report.manifest]:
        click.echo(str(path))
