"""`lem report`."""

from __future__ import annotations

from pathlib import Path

import click

from lem.cli.options import config_option
from lem.config import cli_options
from lem.report import FORMATS, ReportSettings


@click.command()
@click.argument("scores", nargs=-1, type=click.Path(path_type=Path))
@config_option
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--plot", type=click.Path(path_type=Path), help="Also draw the headline as a PNG.")
@cli_options(ReportSettings, skip=("scores",))
def report(
    scores: tuple[Path, ...], config_path: Path | None, fmt: str, plot: Path | None, **flags
) -> None:
    """Summarise SCORES files (or directories): means, 95% CIs, n, unscored, paired tests.

    \b
    Each metric is named with what it measures and which direction is better
    (over-refusal: lower; refusal of unsafe prompts: higher).
    Example:  lem report scores/ --baseline instruct --format markdown --plot headline.png
    """
    from lem.experiment import settings_for
    from lem.report import format_rows, load_scores, skipped_metrics, summarise
    from lem.report import plot as draw
    from lem.store import check_output_file

    flags["scores"] = [str(p) for p in scores] or None
    s = settings_for("report", config_path, flags)
    if not s.scores:
        raise click.UsageError("give SCORES files or directories, or --config lem.toml")
    if plot is not None:
        check_output_file(plot, "--plot")
    rows = summarise(load_scores(s.scores), s.baseline, seed=s.seed, resamples=s.resamples)
    if plot is not None:
        draw(rows, plot, s.baseline)
    text = format_rows(
        rows, fmt, s.baseline, str(plot) if plot else None, skipped_metrics(s.scores)
    )
    click.echo(text)
    if plot is not None:
        click.echo(f"plot: {plot}", err=True)
