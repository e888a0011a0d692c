"""Report rows as text: the headline (one line per headline metric, one column per model),
the detailed table, and the formats table, markdown, csv, json and html."""

from __future__ import annotations

import json
from collections.abc import Sequence

from lem.errors import LemError
from lem.report.summary import Row

FORMATS = ("table", "markdown", "csv", "json", "html")
ARROW = {True: "↑ higher", False: "↓ lower", None: ""}
NOTES = (
    "95% CI: Wilson for proportions; percentile bootstrap (seeded) for scores, from n = 10 "
    "up. Unscored verdicts are counted, never averaged in.",
    "delta: mean paired difference vs the baseline on items both have scored; p: exact "
    "McNemar (proportions) or Wilcoxon signed-rank (scores), two-sided, not corrected for "
    "multiple comparisons.",
)


def headline_rows(rows: list[Row]) -> list[tuple[str, str, str | None]]:
    """The headline metrics that have data, in benchmark order: (benchmark, metric, subset)."""
    from lem.bench import BENCHMARKS

    present = {(r.benchmark, r.metric, r.subset) for r in rows if r.group is None}
    out = []
    for bench in dict.fromkeys(r.benchmark for r in rows):
        definition = BENCHMARKS.get(bench)
        for h in definition.headline if definition else ():
            if (bench, h.metric, h.subset) in present:
                out.append((bench, h.metric, h.subset))
    return out


def format_p(p: float | None) -> str:
    if p is None:
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


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


def cell(row: Row) -> str:
    """`62.0% [48.2, 74.1]` or `7.45 [7.02, 7.86]`, plus the paired delta and p when set."""
    if row.mean is None:
        return f"unscored ({row.unscored})"
    text = f"{_num(row.mean, row.kind)} {_interval(row.ci_low, row.ci_high, row.kind)}"
    if row.ci_low is None:
        text = f"{_num(row.mean, row.kind)} (n too small for a CI)"
    if row.delta is not None:
        text += f"  Δ{_num(row.delta, row.kind, delta=True)} p={format_p(row.p_value)}"
    if row.unscored:
        text += f" ({row.unscored} unscored)"
    return text


def headline(rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    """One line per headline metric: its label, n, direction, and one cell per model."""
    by_key = {(r.model, r.benchmark, r.metric, r.subset): r for r in rows if r.group is None}
    models = list(dict.fromkeys(r.model for r in rows))
    header = ["Metric", "n", "better", *models]
    body = []
    for bench, metric, subset in headline_rows(rows):
        cells = [by_key.get((m, bench, metric, subset)) for m in models]
        found = [c for c in cells if c is not None]
        ns = sorted({c.n for c in found})
        n = str(ns[0]) if len(ns) == 1 else f"{ns[0]}-{ns[-1]}"
        line = [found[0].label, n, ARROW[found[0].higher_is_better]]
        body.append(line + [cell(c) if c is not None else "-" for c in cells])
    return header, body


COLUMNS = ("model", "benchmark", "metric", "slice", "better", "mean", "95% CI", "n", "unscored")
DELTA_COLUMNS = ("delta", "95% CI (delta)", "p", "test", "n paired")


def _slice(row: Row) -> str:
    return "/".join(s for s in (row.subset, row.group) if s) or "all"


def detail_cells(rows: list[Row], baseline: str | None) -> tuple[list[str], list[list[str]]]:
    """The full table as text cells (proportions shown in percent)."""
    header = list(COLUMNS) + (list(DELTA_COLUMNS) if baseline is not None else [])
    body = []
    for r in rows:
        if r.metric.startswith("agreement"):
            continue
        cells = [r.model, r.benchmark, r.metric, _slice(r), ARROW[r.higher_is_better]]
        cells += [_num(r.mean, r.kind), _interval(r.ci_low, r.ci_high, r.kind)]
        cells += [str(r.n), str(r.unscored)]
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


def agreement_cells(rows: list[Row]) -> tuple[list[str], list[list[str]]] | None:
    """Judge vs classifier: agreement, kappa and confusion counts, when both labelled."""
    found = [r for r in rows if r.metric.startswith("agreement")]
    if not found:
        return None
    header = ["model", "benchmark", "pair", "n", "agreement", "95% CI", "kappa", "confusion"]
    body = []
    for r in found:
        confusion = ", ".join(f"{k}: {v}" for k, v in r.extra["confusion"].items())
        kappa = r.extra["kappa"]
        body.append(
            [r.model, r.benchmark, r.metric.split(":", 1)[1], str(r.n), _num(r.mean, "binary")]
            + [_interval(r.ci_low, r.ci_high, "binary"), "-" if kappa is None else f"{kappa:.2f}"]
            + [confusion]
        )
    return header, body


def judge_note(skipped: dict[str, list[str]]) -> str | None:
    """The one line saying which metrics a judge would add and how to get them."""
    if not skipped:
        return None
    parts = "; ".join(f"{bench}: {', '.join(metrics)}" for bench, metrics in skipped.items())
    return (
        f"Not scored without an LLM judge: {parts}. Add them with `lem score ... --judge "
        "gemini/<model>` (or openai/<model> with --judge-base-url), or `[score] judge` in lem.toml."
    )


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
    rows: list[Row],
    fmt: str,
    baseline: str | None = None,
    plot: str | None = None,
    skipped: dict[str, list[str]] | None = None,
) -> str:
    """The report in one of FORMATS."""
    if fmt == "json":
        return json.dumps([r.to_json(baseline) for r in rows], indent=2, ensure_ascii=False)
    if fmt == "csv":
        return _csv(rows, baseline)
    if fmt not in FORMATS:
        raise LemError(f"--format {fmt}: unknown; use {', '.join(FORMATS)}")
    head, detail, agree = headline(rows), detail_cells(rows, baseline), agreement_cells(rows)
    notes = list(NOTES if baseline is not None else NOTES[:1])
    note = judge_note(skipped or {})
    notes += [note] if note else []
    if fmt == "table":
        parts = [_text_table(*head), "", _text_table(*detail)]
        parts += ["", _text_table(*agree)] if agree else []
        return "\n".join([*parts, "", *notes])
    if fmt == "markdown":
        parts = ["## Headline", "", _markdown_table(*head), "", "## All metrics", ""]
        parts += [_markdown_table(*detail), ""]
        if agree:
            parts += ["## Judge vs classifier", "", _markdown_table(*agree), ""]
        return "\n".join(parts + [f"- {n}" for n in notes])
    return _html(head, detail, agree, plot, notes)


def _csv(rows: list[Row], baseline: str | None) -> str:
    import csv
    import io

    buffer = io.StringIO()
    dicts = [r.to_json(baseline) for r in rows]
    for d in dicts:
        d.pop("extra", None)
    names = list(dict.fromkeys(k for d in dicts for k in d))
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    writer.writerows(dicts)
    return buffer.getvalue()


def _html(head, detail, agree, plot: str | None, notes: Sequence[str]) -> str:
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
    agreement = f"<h2>Judge vs classifier</h2>{table(*agree)}" if agree else ""
    footer = "".join(f"<p><small>{escape(n)}</small></p>" for n in notes)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>lem report</title>"
        f"<style>{style}</style></head><body><h1>lem report</h1><h2>Headline</h2>"
        f"{table(*head)}{image}<h2>All metrics</h2>{table(*detail)}{agreement}{footer}"
        "</body></html>\n"
    )
