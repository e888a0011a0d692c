"""`lem run` and `lem init`."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("experiment", required=False, type=click.Path(path_type=Path))
@click.option("--quick", is_flag=True, help="The shipped quick profile (no file needed).")
@click.option("--out", type=click.Path(path_type=Path), help="Run directory [from the file].")
@click.option(
    "--force",
    multiple=True,
    help="Re-run this stage even if it is up to date (generate, train, bench, score, report).",
)
@click.option(
    "--only",
    multiple=True,
    help="Run only this stage (repeatable); the others are neither run nor checked for changes.",
)
def run(
    experiment: Path | None,
    quick: bool,
    out: Path | None,
    force: tuple[str, ...],
    only: tuple[str, ...],
) -> None:
    """Run the whole pipeline from an experiment file: generate, train, bench, score, report.

    \b
    Stages whose inputs and settings are unchanged are skipped; a killed run continues
    where it stopped when you run it again.
    Examples:  lem run --quick          (SmolLM2 from PyPI; about 45 minutes on a slow 2-core CPU)
               lem init . && lem run lem.toml
               lem run lem.toml --only bench   (one stage, with the settings lem run gives it)
    """
    from lem.run import run_experiment

    if experiment is not None and quick:
        raise click.UsageError("give an experiment file or --quick, not both")
    report = run_experiment(experiment, quick=quick, out=out, force=force, only=only)
    if (report.report / "report.txt").is_file() and (not only or "report" in only):
        click.echo((report.report / "report.txt").read_text().rstrip())
    click.echo(
        f"\nran: {', '.join(report.ran) or 'nothing'}; up to date: "
        f"{', '.join(report.skipped) or 'nothing'}; {report.seconds:.0f}s",
        err=True,
    )
    click.echo(f"run directory: {report.out}  (report: {report.report / 'report.md'})", err=True)


@click.command()
@click.argument("directory", default=".", type=click.Path(path_type=Path))
@click.option("--quick", is_flag=True, help="The quick profile instead of the full-size one.")
@click.option("--force", is_flag=True, help="Replace an existing lem.toml.")
def init(directory: Path, quick: bool, force: bool) -> None:
    """Write a commented experiment file (lem.toml) into DIRECTORY."""
    from lem.experiment import init_experiment

    click.echo(str(init_experiment(directory, quick=quick, force=force)))
