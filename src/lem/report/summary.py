"""Scores -> rows with honest uncertainty, paired comparisons and judge/classifier agreement.

For each model, benchmark, metric and slice (`subset`, and within it `group`): the mean
of the scored verdicts, a 95% interval (Wilson for proportions, a seeded percentile
bootstrap for scores, given only from MIN_BOOTSTRAP_N values up: below that a bootstrap
interval covers far less than 95% of the time, and on identical values it has zero
width, so the row says "n too small" instead), n, and how many verdicts were unscored
(counted, never averaged in). A category metric (Do Not Answer's 0-5 action) becomes one
proportion per category (`action=0`...).

Against `baseline`, each row gets the paired difference on the item ids both models have
a scored verdict for (`delta`, with a paired bootstrap interval and `n_paired`) and a
p-value: exact McNemar for proportions, Wilcoxon signed-rank for scores (`lem.stats`).
p-values are per row, not corrected for multiple comparisons.

Where an LLM judge and lem's refusal classifier labelled the same answers (the pairs a
benchmark names in `agreement`), an `agreement` row gives how often they agree, Cohen's
kappa and the confusion counts: how far to trust the classifier's offline number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lem import stats
from lem.errors import LemError
from lem.store import iter_jsonl, read_manifest

SCORE_FIELDS = ("id", "benchmark", "model", "metric", "value", "status")
KINDS = ("binary", "score", "category")
MIN_BOOTSTRAP_N = 10


@dataclass
class Row:
    """One model x benchmark x metric x slice. The first eight fields are DESIGN.md's layout."""

    model: str
    benchmark: str
    metric: str
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    unscored: int
    subset: str | None = None
    group: str | None = None
    kind: str = "score"  # "binary" (a proportion in 0..1) or "score"
    label: str = ""  # what the figure is, in words ("XSTest over-refusal (safe prompts)")
    higher_is_better: bool | None = None
    ci_note: str | None = None  # why there is no interval, when there is none
    delta: float | None = None
    p_value: float | None = None
    delta_ci_low: float | None = None
    delta_ci_high: float | None = None
    n_paired: int | None = None
    test: str | None = None  # "mcnemar-exact", "wilcoxon-exact", "wilcoxon-normal"
    extra: dict = field(default_factory=dict)  # agreement rows: kappa, confusion counts

    def to_json(self, baseline: str | None) -> dict:
        """DESIGN.md's row; comparison fields only on non-baseline rows when a baseline is set."""
        body = asdict(self)
        if not body["extra"]:
            body.pop("extra")
        if baseline is None or self.model == baseline or self.metric.startswith("agreement"):
            for key in ("delta", "p_value", "delta_ci_low", "delta_ci_high", "n_paired", "test"):
                body.pop(key)
        return body

    @property
    def key(self) -> tuple:
        return (self.benchmark, self.metric, self.subset, self.group)


# ---------------------------------------------------------------- loading


def score_files(paths: Sequence[Path]) -> list[Path]:
    """Scores files from files or directories (a directory's *.jsonl files)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.glob("*.jsonl"))
            if not found:
                raise LemError(f"{path}: no *.jsonl scores files in this directory")
            files += found
        elif not path.exists():
            raise LemError(f"{path}: scores file not found")
        else:
            files.append(path)
    return list(dict.fromkeys(p.resolve() for p in files))


def skipped_metrics(paths: Sequence[Path]) -> dict[str, list[str]]:
    """Judged metrics the score runs behind these files skipped for want of a judge."""
    out: dict[str, list[str]] = {}
    for path in map(Path, paths):
        directory = path if path.is_dir() else path.parent
        for bench, metrics in read_manifest(directory).get("skipped_without_judge", {}).items():
            out.setdefault(bench, [])
            out[bench] += [m for m in metrics if m not in out[bench]]
    return out


def load_scores(paths: Sequence[Path]) -> list[dict]:
    """Verdicts from scores files or directories, each tagged with its kind; checked."""
    records: list[dict] = []
    seen: dict[tuple, str] = {}
    files = score_files(paths)
    for path in files:
        count = 0
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
            count += 1
        if count == 0:
            raise LemError(f"{path}: no verdicts in it (an empty scores file)")
    if not records:
        raise LemError("no verdicts in the scores given")
    return records


def _kind(record: dict, where: str) -> str:
    kind = record.get("kind")
    if kind in KINDS:
        return kind
    if kind is not None:
        raise LemError(f"{where}: unknown kind {kind!r}; expected binary, score or category")
    if record["metric"] in ("accuracy", "accuracy_strict", "refusal", "mc1"):
        return "binary"
    raise LemError(
        f"{where}: metric {record['metric']!r} has no `kind` field; add kind: binary or score"
    )


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
        "subset": rec.get("subset"),
        "group": rec.get("group"),
    }


# ---------------------------------------------------------------- summarising


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


Groups = dict[tuple, dict[str, float | None]]  # (model, bench, metric, subset, group) -> values


def _groups(records: list[dict]) -> tuple[Groups, dict]:
    """Values by slice: each record counts in its subset, and in its group within it."""
    groups: Groups = {}
    kinds: dict[tuple[str, str], str] = {}
    for r in records:
        value = r["value"] if r["ok"] else None
        base = (r["model"], r["benchmark"], r["metric"], r["subset"])
        groups.setdefault((*base, None), {})[r["id"]] = value
        if r["group"] is not None:
            groups.setdefault((*base, r["group"]), {})[r["id"]] = value
        kinds[(r["benchmark"], r["metric"])] = r["kind"]
    return groups, kinds


def summarise(
    records: list[dict],
    baseline: str | None = None,
    seed: int = 0,
    resamples: int = stats.RESAMPLES,
) -> list[Row]:
    """One Row per model, benchmark, metric and slice, with comparisons against `baseline`."""
    records = _expand_categories(records)
    groups, kinds = _groups(records)
    models = _model_order(records, baseline)
    rows = []
    for key in sorted(groups, key=_row_order(records, models)):
        model, bench, metric, subset, group = key
        row = _describe(key, kinds[(bench, metric)], groups[key], seed, resamples)
        if baseline is not None and model != baseline:
            base = groups.get((baseline, bench, metric, subset, group), {})
            _compare(row, base, groups[key], seed, resamples)
        rows.append(row)
    return rows + agreement_rows(records)


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
    """Sort key: benchmark (registry order), metric and slice (first seen), group, model."""
    from lem.bench import BENCHMARKS

    order = list(BENCHMARKS)
    firsts = {
        k: i
        for i, k in enumerate(
            dict.fromkeys((r["benchmark"], r["metric"], r["subset"]) for r in records)
        )
    }

    def key(group: tuple) -> tuple:
        model, bench, metric, subset, grp = group
        b = order.index(bench) if bench in order else len(order)
        return (b, bench, firsts[(bench, metric, subset)], grp or "", models.index(model))

    return key


def describe_metric(bench: str, metric: str, subset: str | None) -> tuple[str, bool | None]:
    """A metric's label and direction, from its benchmark's definition where it has one."""
    from lem.bench import BENCHMARKS

    definition = BENCHMARKS.get(bench)
    if definition is None:
        return f"{bench} {metric}" + (f" ({subset})" if subset else ""), None
    spec = definition.headline_for(metric, subset)
    direction = definition.direction(metric, subset)
    if spec is not None:
        return spec.label, direction
    return f"{definition.title} {metric}" + (f" ({subset})" if subset else ""), direction


def _describe(key: tuple, kind: str, values: dict, seed: int, resamples: int) -> Row:
    model, bench, metric, subset, group = key
    scored = [v for v in values.values() if v is not None]
    label, direction = describe_metric(bench, metric.split("=")[0], subset)
    if group:
        label = f"{label} [{group}]"
    row = Row(model, bench, metric, None, None, None, len(scored), len(values) - len(scored))
    row.subset, row.group, row.kind = subset, group, kind
    row.label, row.higher_is_better = label, direction
    if not scored:
        return row
    row.mean = float(np.mean(scored))
    if kind == "binary":
        row.ci_low, row.ci_high = stats.wilson(int(sum(scored)), len(scored))
    elif len(scored) >= MIN_BOOTSTRAP_N:
        row.ci_low, row.ci_high = stats.bootstrap_ci(scored, resamples=resamples, seed=seed)
    else:
        row.ci_note = f"n < {MIN_BOOTSTRAP_N}: too few for an honest interval"
    return row


def _compare(row: Row, base: dict, values: dict, seed: int, resamples: int) -> None:
    ids = [i for i in values if values[i] is not None and base.get(i) is not None]
    row.n_paired = len(ids)
    if not ids:
        return
    a = np.array([base[i] for i in ids], dtype=float)
    b = np.array([values[i] for i in ids], dtype=float)
    row.delta = float(np.mean(b - a))
    if len(ids) >= MIN_BOOTSTRAP_N:
        row.delta_ci_low, row.delta_ci_high = stats.paired_bootstrap_ci(a, b, resamples, seed)
    if row.kind == "binary":
        only_base = int(np.sum((a == 1) & (b == 0)))
        only_model = int(np.sum((a == 0) & (b == 1)))
        row.p_value, row.test = stats.mcnemar_exact(only_base, only_model), "mcnemar-exact"
    else:
        result = stats.wilcoxon_signed_rank(a, b)
        row.p_value, row.test = result.p_value, f"wilcoxon-{result.method}"


# ---------------------------------------------------------------- judge vs classifier


def agreement_rows(records: list[dict]) -> list[Row]:
    """Judge-vs-classifier agreement per model, for the metric pairs benchmarks declare."""
    from lem.bench import BENCHMARKS

    by_key = {(r["model"], r["benchmark"], r["metric"], r["id"]): r for r in records if r["ok"]}
    rows = []
    models = list(dict.fromkeys(r["model"] for r in records))
    for bench in dict.fromkeys(r["benchmark"] for r in records):
        definition = BENCHMARKS.get(bench)
        for classifier, judged in definition.agreement if definition else ():
            for model in models:
                pairs = [
                    (int(r["value"]), int(by_key[(model, bench, judged, r["id"])]["value"]))
                    for (m, b, metric, _), r in by_key.items()
                    if (m, b, metric) == (model, bench, classifier)
                    and (model, bench, judged, r["id"]) in by_key
                ]
                if pairs:
                    rows.append(_agreement(model, bench, classifier, judged, pairs))
    return rows


def _agreement(model: str, bench: str, ours: str, theirs: str, pairs: list) -> Row:
    a = [p[0] for p in pairs]
    b = [p[1] for p in pairs]
    agree = sum(x == y for x, y in pairs)
    row = Row(model, bench, f"agreement:{ours}~{theirs}", agree / len(pairs), None, None, 0, 0)
    row.ci_low, row.ci_high = stats.wilson(agree, len(pairs))
    row.n, row.kind = len(pairs), "binary"
    row.label = f"classifier {ours} vs judge {theirs}: agreement"
    confusion = {
        f"classifier {x} / judge {y}": sum(p == (x, y) for p in pairs)
        for x in (0, 1)
        for y in (0, 1)
    }
    row.extra = {"kappa": stats.cohen_kappa(a, b), "confusion": confusion}
    return row
