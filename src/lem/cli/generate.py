"""`lem generate`."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="Experiment file; its [generate] table sets defaults that flags override.",
)
@click.option("--teacher", help="mlx/<dir-or-hub-id>, gemini/<model> or openai/<model>.")
@click.option("--teacher-base-url", help="Server URL for openai/ teachers (or a Gemini stand-in).")
@click.option("--kernel", type=click.Path(path_type=Path), help="Kernel directory [shipped].")
@click.option("--seeds", type=click.Path(path_type=Path), help="Seed JSONL [shipped train seeds].")
@click.option("--out", type=click.Path(path_type=Path), help="Output directory [training].")
@click.option("--n-examples", type=int, help="Teacher requests [one per seed].")
@click.option("--valid-fraction", type=float, help="Share of seed ids for valid.jsonl [0.1].")
@click.option("--max-tokens", type=int, help="Token cap per answer [512].")
@click.option("--temperature", type=float, help="Teacher sampling temperature [0.7].")
@click.option("--seed", type=int, help="Sampling, seed-order and split seed [0].")
@click.option("--min-chars", type=int, help="Drop answers shorter than this [80].")
@click.option("--length-retries", type=int, help="Re-asks of a truncated answer, cap x2 each [2].")
@click.option("--concurrency", type=int, help="API teachers: requests in flight [8].")
@click.option("--max-retries", type=int, help="API teachers: retries of a failed call [4].")
@click.option("--timeout", type=float, help="API teachers: seconds per call [120].")
@click.option("--batch-size", type=int, help="Requests handed to the teacher at a time [32].")
@click.option("--voices/--no-voices", default=None, help="Vary the answer's voice [off].")
@click.option("--voice-seed", type=int, help="Seed for choosing voices [0].")
@click.option(
    "--allow-kernel-refs/--drop-kernel-refs",
    default=None,
    help="Keep answers that mention the axioms/framework (still counted) [drop].",
)
def generate(config_path: Path | None, **flags) -> None:
    """Ask a teacher to answer the seed prompts with the kernel in context; write chat data.

    \b
    Writes OUT/train.jsonl and OUT/valid.jsonl (mlx-lm chat format, split by seed id),
    OUT/rejected.jsonl (what the quality gates dropped, and why) and OUT/manifest.json.
    Raw answers go to OUT/work/ as they arrive: a killed run re-run continues.
    Example:  lem generate --teacher gemini/gemini-2.5-flash --out training
    """
    from lem.config import resolve, section
    from lem.generate import GenerateSettings
    from lem.generate import generate as run

    settings = resolve(
        GenerateSettings,
        section(config_path, "generate"),
        flags,
        where=f"{config_path} [generate]" if config_path else "generate",
    )
    report = run(settings)
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
