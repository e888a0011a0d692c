"""`lem report`: scores -> per-model summaries with honest uncertainty, and comparisons.

`summary` turns scores into rows (n, 95% CI, unscored, paired tests vs a baseline,
judge/classifier agreement); `render` prints them (table, markdown, csv, json, html);
`plot` draws the headline metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lem.config import setting
from lem.report.plot import plot
from lem.report.render import FORMATS, format_rows
from lem.report.summary import Row, load_scores, skipped_metrics, summarise


@dataclass
class ReportSettings:
    """Everything `lem report` takes; the `[report]` table of lem.toml uses these names."""

    scores: list[Path] = field(default_factory=list)  # scores files or directories
    baseline: str | None = setting(None, "Model to compare every other model against (paired)")
    seed: int = setting(0, "Bootstrap seed", min=0)
    resamples: int = setting(10_000, "Bootstrap resamples", min=100)


__all__ = [
    "FORMATS",
    "ReportSettings",
    "Row",
    "format_rows",
    "load_scores",
    "plot",
    "skipped_metrics",
    "summarise",
]
