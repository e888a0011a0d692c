"""`lem doctor`."""

import click


@click.command()
def doctor() -> None:
    """Show the compute backend, measured matmul speed, versions and which API keys are set.

    Key values are never printed. On Linux, says how to get the fast BLAS if it is missing.
    """
    from lem.doctor import diagnose, format_report

    click.echo(format_report(diagnose()))
