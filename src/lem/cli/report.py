"""`lem report`."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("scores", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--baseline", help="Model to compare every other model against (paired).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "markdown", "csv", "json", "html"]),
    default="table",
    show_default=True,
)
@click.option("--plot", type=click.Path(path_type=Path), help="Also draw the headline as a PNG.")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option(
    "--resamples", type=int, default=10_000, show_default=True, help="Bootstrap resamples."
)
def report(
    scores: tuple[Path, ...],
    baseline: str | None,
    fmt: str,
    plot: Path | None,
    seed: int,
    resamples: int,
) -> None:
    """Summarise SCORES files (or directories): means, 95% CIs, n, unscored, paired tests.

    \b
    Example:  lem report scores/ --baseline base --format markdown --plot headline.png
    """
    from lem.errors import LemError
    from lem.report import format_rows, load_scores, summarise
    from lem.report import plot as draw

    if resamples < 100:
        raise LemError(f"--resamples {resamples}: use at least 100 (10,000 is the default)")
    rows = summarise(load_scores(scores), baseline, seed=seed, resamples=resamples)
    if plot is not None:
        draw(rows, plot, baseline)
    click.echo(format_rows(rows, fmt, baseline, str(plot) if plot is not None else None))
    if plot is not None:
        click.echo(f"plot: {plot}", err=True)
