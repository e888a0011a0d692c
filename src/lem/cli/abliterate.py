"""`lem abliterate`."""

from __future__ import annotations

import click

from lem.abliterate import AbliterateSettings
from lem.config import cli_options


@click.command()
@cli_options(AbliterateSettings)
def abliterate(**flags) -> None:
    """Remove a model's refusal by a searched weight edit: the abliterated control.

    \b
    Searches (or continues searching) layer profiles and direction layers with Optuna,
    measuring refusal, over-refusal and first-token KL on held-out prompts; prints the
    Pareto front. OUT remembers the settings: re-run with a larger --trials to continue,
    and --trial N (or -1, the suggested one) to export a trial as OUT/trial-N/adapter
    and OUT/trial-N/model (benchmark it with `lem bench -m abliterated=OUT/trial-N/model`).
    Example:  lem abliterate --model runs/refuser/model --out runs/abl --trials 24
              lem abliterate --out runs/abl --trial -1
    """
    from lem.abliterate import abliterate as search
    from lem.abliterate import export, resolve_settings

    settings = resolve_settings(flags)
    if settings.trial is not None:
        r = export(settings)
        values = "  ".join(f"{k} {v:.4g}" for k, v in r.values.items())
        click.echo(f"trial {r.trial}: {values}")
        click.echo(f"adapter: {r.adapter}")
        if r.model is not None:
            click.echo(f"model: {r.model}")
        return
    r = search(settings)
    base = r.baseline
    if r.requeued:
        killed = ", ".join(map(str, r.requeued))
        click.echo(f"continued a killed search: trial(s) {killed} ran again with their parameters")
    click.echo(
        f"{r.finished} trials finished ({r.ran} now, {r.seconds:.0f}s); unedited model: "
        f"refusal {base['refusal']:.2f}, over-refusal {base['over_refusal']:.2f}"
    )
    click.echo("Pareto front (refusal, over-refusal, KL: lower is better on each):")
    click.echo(f"  {'trial':>5}  {'refusal':>7}  {'over':>5}  {'KL':>7}  layer  peak  span  max")
    for t in r.front:
        p = t["params"]
        click.echo(
            f"  {t['trial']:>5}  {t['refusal']:>7.2f}  {t['over_refusal']:>5.2f}  "
            f"{t['kl']:>7.4f}  {p['source_layer']:>5}  {p['peak']:>4.1f}  {p['span']:>4.1f}  "
            f"{p['weight']:>4.2f}" + _judged(t)
        )
    if r.suggested is not None:
        click.echo(
            f"suggested: trial {r.suggested} (lowest refusal with KL <= {settings.kl_max}); "
            f"export it with --trial {r.suggested}"
        )
    click.echo(f"plot: {r.plot}")


def _judged(t: dict) -> str:
    judge = t.get("judge")
    if not judge or judge.get("refusal") is None:
        return ""
    return f"  judge refusal {judge['refusal']:.2f} (agrees {judge['agreement']:.0%})"
