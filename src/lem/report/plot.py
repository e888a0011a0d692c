"""The report's picture: one dot-and-whisker panel per headline metric (mean and 95% CI
per model), each titled with what the figure is and which direction is better."""

from __future__ import annotations

import math
from pathlib import Path

from lem.errors import LemError
from lem.report.render import format_p, headline_rows
from lem.report.summary import Row

COLUMNS = 3  # panels per row of the figure


def plot(rows: list[Row], path: str | Path, baseline: str | None = None) -> Path:
    """Draw the headline metrics to `path` (PNG).

    The baseline's interval is drawn as a grey band across its panel, so whether another
    model's interval clears it is visible at a glance.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    panels = headline_rows(rows)
    if not panels:
        raise LemError("nothing to plot: no headline metric has scores")
    by_key = {(r.model, r.benchmark, r.metric, r.subset): r for r in rows if r.group is None}
    models = list(dict.fromkeys(r.model for r in rows))
    colours = {m: plt.cm.tab10(i % 10) for i, m in enumerate(models)}
    if baseline is not None:
        colours[baseline] = (0.3, 0.3, 0.3, 1.0)
    columns = min(COLUMNS, len(panels))
    lines = math.ceil(len(panels) / columns)
    height = lines * (0.62 * len(models) + 1.35) + 0.6
    fig, axes = plt.subplots(
        lines, columns, figsize=(4.3 * columns, height), squeeze=False, sharey=True
    )
    for ax, (bench, metric, subset) in zip(axes.flat, panels, strict=False):
        cells = [by_key.get((m, bench, metric, subset)) for m in models]
        _panel(ax, cells, models, colours, baseline)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    note = "Dots: means; bars: 95% CI (Wilson for proportions, bootstrap for scores)."
    if baseline is not None:
        note += f" Grey band: {baseline}'s CI. Δ: paired difference vs {baseline}"
        note += " (p: exact McNemar / Wilcoxon signed-rank)."
    fig.text(0.01, 0.01, note, fontsize=7.5, color="#555", wrap=True)
    fig.tight_layout(rect=(0, 0.035, 1, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def _panel(ax, cells: list, models: list[str], colours: dict, baseline) -> None:
    present = [r for r in cells if r is not None]
    first = present[0]
    binary = first.kind == "binary"
    scale = 100.0 if binary else 1.0
    low_x, high_x = _range(present, binary)
    ys = list(range(len(models)))[::-1]  # first model (the baseline) at the top
    for y, row, model in zip(ys, cells, models, strict=True):
        if row is None or row.mean is None:
            ax.text(
                0.5,
                y,
                "no scored verdicts",
                transform=ax.get_yaxis_transform(),
                ha="center",
                va="center",
                fontsize=8,
                color="#999",
            )
            continue
        mean = row.mean * scale
        low = row.ci_low * scale if row.ci_low is not None else mean
        high = row.ci_high * scale if row.ci_high is not None else mean
        if model == baseline:
            ax.axvspan(low, high, color="#888", alpha=0.13, lw=0)
            ax.axvline(mean, color="#888", lw=0.8, ls="--")
        ax.errorbar(
            mean,
            y,
            xerr=[[mean - low], [high - mean]],
            fmt="o",
            color=colours[model],
            elinewidth=2.4,
            capsize=4,
            markersize=7,
        )
        text = f"{mean:.1f}%" if binary else f"{mean:.2f}"
        if row.delta is not None:
            unit = " pt" if binary else ""
            text += f"   Δ {row.delta * scale:+.1f}{unit}, p={format_p(row.p_value)}"
        where = (mean - low_x) / (high_x - low_x)
        ha = "left" if where < 0.3 else "right" if where > 0.7 else "center"
        box = {"facecolor": "white", "edgecolor": "none", "alpha": 0.75, "pad": 1}
        ax.text(
            mean, y + 0.24, text, ha=ha, va="bottom", fontsize=7.5, color=colours[model], bbox=box
        )
    ax.set_yticks(ys, models)
    ax.set_ylim(-0.6, len(models) - 0.25)
    ax.set_xlim(low_x, high_x)
    better = {True: "higher is better", False: "lower is better", None: ""}[first.higher_is_better]
    unit = "%" if binary else "score"
    ax.set_xlabel(f"{unit}" + (f"  ({better})" if better else ""), fontsize=8.5)
    ns = sorted({r.n for r in present})
    n_text = f"n={ns[0]}" if len(ns) == 1 else f"n={ns[0]}-{ns[-1]}"
    ax.set_title(f"{first.label}  ({n_text})", fontsize=9, fontweight="bold")
    ax.grid(axis="x", alpha=0.3)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _range(rows: list[Row], binary: bool) -> tuple[float, float]:
    """The panel's x range: 0-100 for proportions, 1-10 for judge scores, else the data's."""
    if binary:
        return 0.0, 100.0
    lows = [r.ci_low if r.ci_low is not None else r.mean for r in rows if r.mean is not None]
    highs = [r.ci_high if r.ci_high is not None else r.mean for r in rows if r.mean is not None]
    if lows and min(lows) >= 1 and max(highs) <= 10:
        return 1.0, 10.0
    if lows and min(lows) >= 0 and max(highs) <= 1:
        return 0.0, 1.0
    low, high = (min(lows), max(highs)) if lows else (0.0, 1.0)
    return low - 0.05 * (high - low or 1), high + 0.05 * (high - low or 1)
