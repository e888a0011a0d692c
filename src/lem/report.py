"""`lem report`: scores -> per-model summaries with honest uncertainty, and comparisons.

For each model, benchmark and metric: the mean of the scored verdicts, a 95% interval
(Wilson for proportions, a seeded percentile bootstrap for 1-10 scores), n, and how
many verdicts were unscored (they are counted, never averaged in). A category metric
(Do Not Answer's 0-5 action) is reported as one proportion per category (`action=0`...).

Against `--baseline`, each row gets the paired difference on the item ids both models
have a scored verdict for (`delta`, with a paired bootstrap interval and `n_paired`),
and a p-value: exact McNemar for proportions, Wilcoxon signed-rank for scores (see
`lem.stats`). p-values are per row, not corrected for multiple comparisons.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lem import stats
from lem.errors import LemError
from lem.judge.rubrics import RUBRICS
from lem.store import iter_jsonl

SCORE_FIELDS = ("id", "benchmark", "model", "metric", "value", "status")
BENCH_ORDER = ("gsm8k", "truthfulqa", "do_not_answer", "toxigen", "ethics")
# Headline columns in the LEM reference's shape: (label, benchmark, metric).
HEADLINE = (
    ("GSM8K", "gsm8k", "accuracy"),
    ("Truthful", "truthfulqa", "truthfulness"),
    ("Safety", "do_not_answer", "safety"),
    ("Nuance", "do_not_answer", "nuance"),
    ("Kindness", "toxigen", "kindness"),
)


@dataclass
class Row:
    """One model x benchmark x metric. The first eight fields are DESIGN.md's JSON layout."""

    model: str
    benchmark: str
    metric: str
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    unscored: int
    kind: str = "score"  # "binary" (a proportion in 0..1) or "score"
    delta: float | None = None
    p_value: float | None = None
    delta_ci_low: float | None = None
    delta_ci_high: float | None = None
    n_paired: int | None = None
    test: str | None = None  # "mcnemar-exact", "wilcoxon-exact", "wilcoxon-normal"

    def to_json(self, baseline: str | None) -> dict:
        """DESIGN.md's row; comparison fields only on non-baseline rows when a baseline is set."""
        body = asdict(self)
        if baseline is None or self.model == baseline:
            for key in ("delta", "p_value", "delta_ci_low", "delta_ci_high", "n_paired", "test"):
                body.pop(key)
        return body


def _kind(record: dict, where: str) -> str:
    kind = record.get("kind")
    if kind in ("binary", "score", "category"):
        return kind
    if kind is not None:
        raise LemError(f"{where}: unknown kind {kind!r}; expected binary, score or category")
    metric = record["metric"]
    if metric in ("accuracy", "accuracy_strict"):
        return "binary"
    for rubric in RUBRICS.values():
        for m in rubric.metrics:
            if m.name == metric and rubric.benchmark == record["benchmark"]:
                return m.kind
    raise LemError(f"{where}: metric {metric!r} has no `kind` field; add kind: binary or score")


def _score_files(paths: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            found = sorted(p for p in path.glob("*.jsonl"))
            if not found:
                raise LemError(f"{path}: no *.jsonl scores files in this directory")
            files += found
        else:
            files.append(path)
    unique = list(dict.fromkeys(p.resolve() for p in files))
    return unique


def load_scores(paths: Sequence[Path]) -> list[dict]:
    """Verdicts from scores files or directories, each tagged with its kind; checked."""
    records: list[dict] = []
    seen: dict[tuple, str] = {}
    for path in _score_files(paths):
        for number, rec in iter_jsonl(path):
            where = f"{path}:{number}"
            missing = [k for k in SCORE_FIELDS if k not in rec]
            if missing:
                raise LemError(
                    f"{where}: missing field(s) {', '.join(missing)}; is it a scores file?"
                )
            key = (str(rec["model"]), rec["benchmark"], rec["metric"], str(rec["id"]))
            if key in seen:
                raise LemError(f"{where}: a second verdict for {key} (first at {seen[key]})")
            seen[key] = where
            records.append(_checked(rec, where))
    if not records:
        raise LemError("no verdicts in the scores given")
    return records


def _checked(rec: dict, where: str) -> dict:
    kind = _kind(rec, where)
    value, status = rec["value"], rec["status"]
    if status not in ("ok", "unscored"):
        raise LemError(f"{where}: status {status!r}; expected ok or unscored")
    if status == "ok":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise LemError(f"{where}: an ok verdict needs a number value, got {value!r}")
        if kind == "binary" and value not in (0, 1):
            raise LemError(f"{where}: binary value must be 0 or 1, got {value!r}")
    elif value is not None:
        raise LemError(f"{where}: an unscored verdict must have value null, got {value!r}")
    return {
        "id": str(rec["id"]),
        "benchmark": str(rec["benchmark"]),
        "model": str(rec["model"]),
        "metric": str(rec["metric"]),
        "value": value,
        "ok": status == "ok",
        "kind": kind,
    }


def _expand_categories(records: list[dict]) -> list[dict]:
    """A category metric becomes one binary metric per category seen (`action=5`, ...)."""
    cats: dict[tuple[str, str], set[int]] = {}
    for r in records:
        if r["kind"] == "category" and r["ok"]:
            cats.setdefault((r["benchmark"], r["metric"]), set()).add(int(r["value"]))
    out = []
    for r in records:
        if r["kind"] != "category":
            out.append(r)
            continue
        for c in sorted(cats.get((r["benchmark"], r["metric"]), ())):
            value = int(int(r["value"]) == c) if r["ok"] else None
            out.append({**r, "metric": f"{r['metric']}={c}", "value": value, "kind": "binary"})
    return out


Group = dict[tuple[str, str, str], dict]  # (model, benchmark, metric) -> {id: value|None}


def _groups(records: list[dict]) -> tuple[Group, dict]:
    groups: Group = {}
    kinds: dict[tuple[str, str], str] = {}
    for r in records:
        groups.setdefault((r["model"], r["benchmark"], r["metric"]), {})[r["id"]] = (
            r["value"] if r["ok"] else None
        )
        kinds[(r["benchmark"], r["metric"])] = r["kind"]
    return groups, kinds


def summarise(
    records: list[dict],
    baseline: str | None = None,
    seed: int = 0,
    resamples: int = stats.RESAMPLES,
) -> list[Row]:
    """One Row per model, benchmark and metric, with comparisons against `baseline`."""
    records = _expand_categories(records)
    groups, kinds = _groups(records)
    models = _model_order(records, baseline)
    rows = []
    for model, bench, metric in sorted(groups, key=_row_order(records, models)):
        values = groups[(model, bench, metric)]
        kind = kinds[(bench, metric)]
        row = _describe(model, bench, metric, kind, values, seed, resamples)
        if baseline is not None and model != baseline:
            base = groups.get((baseline, bench, metric), {})
            _compare(row, base, values, seed, resamples)
        rows.append(row)
    return rows


def _model_order(records: list[dict], baseline: str | None) -> list[str]:
    models = list(dict.fromkeys(r["model"] for r in records))
    if baseline is not None:
        if baseline not in models:
            raise LemError(
                f"--baseline {baseline}: no such model in the scores ({', '.join(models)})"
            )
        models.remove(baseline)
        models.insert(0, baseline)
    return models


def _row_order(records: list[dict], models: list[str]):
    """Sort key: benchmark (pipeline order), metric (first seen), model (baseline first)."""
    metrics = {
        k: i for i, k in enumerate(dict.fromkeys((r["benchmark"], r["metric"]) for r in records))
    }

    def key(group: tuple[str, str, str]) -> tuple:
        model, bench, metric = group
        b = BENCH_ORDER.index(bench) if bench in BENCH_ORDER else len(BENCH_ORDER)
        return (b, bench, metrics[(bench, metric)], models.index(model))

    return key


def _describe(model, bench, metric, kind, values: dict, seed: int, resamples: int) -> Row:
    scored = [v for v in values.values() if v is not None]
    unscored = len(values) - len(scored)
    row = Row(model, bench, metric, None, None, None, len(scored), unscored, kind)
    if not scored:
        return row
    row.mean = float(np.mean(scored))
    if kind == "binary":
        row.ci_low, row.ci_high = stats.wilson(int(sum(scored)), len(scored))
    else:
        row.ci_low, row.ci_high = stats.bootstrap_ci(scored, resamples=resamples, seed=seed)
    return row


def _compare(row: Row, base: dict, values: dict, seed: int, resamples: int) -> None:
    ids = [i for i in values if values[i] is not None and base.get(i) is not None]
    row.n_paired = len(ids)
    if not ids:
        return
    a = np.array([base[i] for i in ids], dtype=float)
    b = np.array([values[i] for i in ids], dtype=float)
    row.delta = float(np.mean(b - a))
    row.delta_ci_low, row.delta_ci_high = stats.paired_bootstrap_ci(a, b, resamples, seed)
    if row.kind == "binary":
        only_base = int(np.sum((a == 1) & (b == 0)))
        only_model = int(np.sum((a == 0) & (b == 1)))
        row.p_value, row.test = stats.mcnemar_exact(only_base, only_model), "mcnemar-exact"
    else:
        result = stats.wilcoxon_signed_rank(a, b)
        row.p_value, row.test = result.p_value, f"wilcoxon-{result.method}"


def headline(rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    """The reference-shaped table: a header and one line of cells per model."""
    by_key = {(r.model, r.benchmark, r.metric): r for r in rows}
    models = list(dict.fromkeys(r.model for r in rows))
    header = ["Model"]
    for label, bench, metric in HEADLINE:
        ns = sorted({r.n for r in rows if (r.benchmark, r.metric) == (bench, metric)})
        header.append(label + (f" (n={ns[0]})" if len(ns) == 1 else ""))
    body = []
    for model in models:
        cells = [model]
        for _, bench, metric in HEADLINE:
            row = by_key.get((model, bench, metric))
            cells.append(headline_cell(row) if row is not None else "-")
        body.append(cells)
    return header, body


def headline_cell(row: Row) -> str:
    """`62.0% [48.2, 74.1]` or `7.45 [7.02, 7.86]`, plus the paired delta and p when set."""
    if row.mean is None:
        return f"unscored ({row.unscored})"
    if row.kind == "binary":
        text = f"{row.mean * 100:.1f}% [{row.ci_low * 100:.1f}, {row.ci_high * 100:.1f}]"
        delta = f"{row.delta * 100:+.1f} pt" if row.delta is not None else None
    else:
        text = f"{row.mean:.2f} [{row.ci_low:.2f}, {row.ci_high:.2f}]"
        delta = f"{row.delta:+.2f}" if row.delta is not None else None
    if delta is not None:
        text += f" Δ{delta} p={format_p(row.p_value)}"
    if row.unscored:
        text += f" ({row.unscored} unscored)"
    return text


def format_p(p: float | None) -> str:
    if p is None:
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


# ---------------------------------------------------------------- output formats

COLUMNS = ("model", "benchmark", "metric", "mean", "95% CI", "n", "unscored")
DELTA_COLUMNS = ("delta", "95% CI (delta)", "p", "test", "n paired")
NOTES = (
    "95% CI: Wilson for proportions (GSM8K, action=k), percentile bootstrap (seeded) for "
    "1-10 scores. Unscored verdicts are counted, never averaged in.",
    "delta: mean paired difference vs the baseline on items both have scored; p: exact "
    "McNemar (proportions) or Wilcoxon signed-rank (scores), two-sided, not corrected for "
    "multiple comparisons.",
)


def _num(value: float | None, kind: str, delta: bool = False) -> str:
    if value is None:
        return "-"
    if kind == "binary":
        return f"{value * 100:+.1f} pt" if delta else f"{value * 100:.1f}%"
    return f"{value:+.2f}" if delta else f"{value:.2f}"


def _interval(low: float | None, high: float | None, kind: str) -> str:
    if low is None or high is None:
        return "-"
    if kind == "binary":
        return f"[{low * 100:.1f}, {high * 100:.1f}]"
    return f"[{low:.2f}, {high:.2f}]"


def detail_cells(rows: list[Row], baseline: str | None) -> tuple[list[str], list[list[str]]]:
    """The full table as text cells (proportions shown in percent)."""
    header = list(COLUMNS) + (list(DELTA_COLUMNS) if baseline is not None else [])
    body = []
    for r in rows:
        cells = [r.model, r.benchmark, r.metric, _num(r.mean, r.kind)]
        cells += [_interval(r.ci_low, r.ci_high, r.kind), str(r.n), str(r.unscored)]
        if baseline is not None:
            if r.model == baseline:
                cells += ["baseline", "", "", "", ""]
            else:
                cells += [
                    _num(r.delta, r.kind, delta=True),
                    _interval(r.delta_ci_low, r.delta_ci_high, r.kind),
                    format_p(r.p_value),
                    r.test or "-",
                    str(r.n_paired),
                ]
        body.append(cells)
    return header, body


def _text_table(header: list[str], body: list[list[str]]) -> str:
    widths = [max(len(c) for c in col) for col in zip(header, *body, strict=True)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for cells in body:
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _markdown_table(header: list[str], body: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header)] + [line(c) for c in body])


def format_rows(
    rows: list[Row], fmt: str, baseline: str | None = None, plot: str | None = None
) -> str:
    """The report in one of: table, markdown, csv, json, html."""
    if fmt == "json":
        import json

        return json.dumps([r.to_json(baseline) for r in rows], indent=2)
    if fmt == "csv":
        return _csv(rows, baseline)
    head = headline(rows)
    detail = detail_cells(rows, baseline)
    notes = NOTES if baseline is not None else NOTES[:1]
    if fmt == "table":
        parts = [_text_table(*head), "", _text_table(*detail), "", *notes]
        return "\n".join(parts)
    if fmt == "markdown":
        parts = ["## Headline", "", _markdown_table(*head), "", "## All metrics", ""]
        parts += [_markdown_table(*detail), "", *(f"- {n}" for n in notes)]
        return "\n".join(parts)
    if fmt == "html":
        return _html(head, detail, plot, notes)
    raise LemError(f"--format {fmt}: unknown; use table, markdown, csv, json or html")


def _csv(rows: list[Row], baseline: str | None) -> str:
    import csv
    import io

    buffer = io.StringIO()
    dicts = [r.to_json(baseline) for r in rows]
    names = list(dict.fromkeys(k for d in dicts for k in d))
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    writer.writerows(dicts)
    return buffer.getvalue()


def _html(head: tuple, detail: tuple, plot: str | None, notes: Sequence[str]) -> str:
    from html import escape

    def table(header: list[str], body: list[list[str]]) -> str:
        th = "".join(f"<th>{escape(h)}</th>" for h in header)
        trs = "".join(
            "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>" for cells in body
        )
        return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"

    style = (
        "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
        "table{border-collapse:collapse;margin-bottom:1.5em}"
        "th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:14px}"
        "th{background:#f3f3f3}td{font-variant-numeric:tabular-nums}"
    )
    image = f'<p><img src="{escape(plot)}" alt="headline metrics" width="100%"></p>' if plot else ""
    footer = "".join(f"<p><small>{escape(n)}</small></p>" for n in notes)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>lem report</title>"
        f"<style>{style}</style></head><body><h1>lem report</h1><h2>Headline</h2>"
        f"{table(*head)}{image}<h2>All metrics</h2>{table(*detail)}{footer}</body></html>\n"
    )


# ---------------------------------------------------------------- plot


def _plot_panels(rows: list[Row]) -> list[tuple[str, str, str]]:
    """Headline metrics that have data; else every score or accuracy metric there is."""
    present = {(r.benchmark, r.metric) for r in rows if r.mean is not None}
    panels = [(label, b, m) for label, b, m in HEADLINE if (b, m) in present]
    if panels:
        return panels
    order = dict.fromkeys((r.benchmark, r.metric) for r in rows if "=" not in r.metric)
    return [(f"{b} {m}", b, m) for b, m in order if (b, m) in present]


def plot(rows: list[Row], path: str | Path, baseline: str | None = None) -> Path:
    """Dot-and-whisker panels (mean and 95% CI per model), one per headline metric.

    The baseline's interval is drawn as a grey band across its panel, so whether another
    model's interval clears it is visible at a glance.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    panels = _plot_panels(rows)
    if not panels:
        raise LemError("nothing to plot: no scored metric in these scores")
    by_key = {(r.model, r.benchmark, r.metric): r for r in rows}
    models = list(dict.fromkeys(r.model for r in rows))
    colours = {m: plt.cm.tab10(i % 10) for i, m in enumerate(models)}
    if baseline is not None:
        colours[baseline] = (0.3, 0.3, 0.3, 1.0)
    width, height = 3.1 * len(panels) + 0.8, 0.85 * len(models) + 1.5
    fig, axes = plt.subplots(1, len(panels), figsize=(width, height), squeeze=False, sharey=True)
    for ax, (label, bench, metric) in zip(axes[0], panels, strict=True):
        cells = [by_key.get((m, bench, metric)) for m in models]
        _panel(ax, label, cells, models, colours, baseline)
    note = "Dots: means; bars: 95% CI (Wilson for accuracy, bootstrap for 1-10 scores)."
    if baseline is not None:
        note += f" Grey band: {baseline}'s CI. Δ: paired difference vs {baseline}"
        note += " (p: exact McNemar / Wilcoxon signed-rank)."
    fig.text(0.01, 0.015, note, fontsize=7.5, color="#555")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


def _panel(ax, label: str, cells: list, models: list[str], colours: dict, baseline) -> None:
    binary = any(r is not None and r.kind == "binary" for r in cells)
    scale = 100.0 if binary else 1.0
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
        mean, low, high = row.mean * scale, row.ci_low * scale, row.ci_high * scale
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
            text += (
                f"   Δ {row.delta * scale:+.1f}{' pt' if binary else ''}, p={format_p(row.p_value)}"
            )
        # Anchor the label so it stays inside the panel near either end of the scale.
        lo_x, hi_x = (0, 100) if binary else (1, 10)
        where = (mean - lo_x) / (hi_x - lo_x)
        ha = "left" if where < 0.3 else "right" if where > 0.7 else "center"
        box = {"facecolor": "white", "edgecolor": "none", "alpha": 0.75, "pad": 1}
        ax.text(
            mean, y + 0.24, text, ha=ha, va="bottom", fontsize=8, color=colours[model], bbox=box
        )
    ax.set_yticks(ys, models)
    ax.set_ylim(-0.6, len(models) - 0.25)
    ax.set_xlim(*((0, 100) if binary else (1, 10)))
    ax.set_xlabel("accuracy (%)" if binary else "judge score (1-10)", fontsize=9)
    ns = sorted({r.n for r in cells if r is not None})
    n_text = "n=0" if not ns else f"n={ns[0]}" if len(ns) == 1 else f"n={ns[0]}-{ns[-1]}"
    ax.set_title(f"{label}  ({n_text})", fontsize=10, fontweight="bold")
    ax.grid(axis="x", alpha=0.3)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
