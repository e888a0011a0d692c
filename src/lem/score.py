"""`lem score`: results files -> scores files, by exact match (GSM8K) or an LLM judge.

A results line (`id, benchmark, model, prompt, response`, from `lem bench` or the LEM
reference layout, read unchanged) is joined by `id` to its benchmark item, which holds
the gold answer or the judge's references. Each scores line is one verdict: `id,
benchmark, model, metric, value` (null when unscored), `status` (ok | unscored),
`reason`, `judge`, `rubric_version`, `raw` (the judge's reply), plus `kind` (binary,
score or category) for the report. Scores files are rewritten whole on each run; judge
verdicts live in the verdict cache as they arrive, so a re-run after a crash or a
re-score of the same content costs no judge calls.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lem.clients import ChatClient, public_url
from lem.config import to_dict
from lem.errors import LemError
from lem.judge import Judge, JudgeItem, Usage, Verdict, estimate_cost
from lem.judge.cache import VerdictCache, default_cache_path
from lem.judge.rubrics import Rubric, rubric_for
from lem.store import MANIFEST, Manifest, read_jsonl, sha256_file, sha256_json, write_jsonl

EXACT_BENCHMARKS = ("gsm8k",)
RESULT_FIELDS = ("id", "benchmark", "model", "response")


@dataclass
class ScoreSettings:
    """Everything `lem score` takes; the `[score]` table of lem.toml uses these names."""

    judge: str | None = None  # gemini/<model>, openai/<model>, mlx/<path>
    judge_base_url: str | None = None  # OpenAI-compatible server, or a Gemini stand-in
    concurrency: int = 8  # API judges: requests in flight
    max_retries: int = 4  # API judges: retries of a failed call (429, 5xx, timeouts)
    timeout: float = 120.0  # API judges: seconds per call
    reasks: int = 2  # follow-up turns after a reply that is not a valid verdict
    out: Path = Path("scores")
    cache: Path | None = None  # verdict cache file; None: $LEM_HOME/verdicts.sqlite
    use_cache: bool = True


@dataclass
class FileScores:
    """What one results file became."""

    results: Path
    scores: Path
    benchmark: str
    models: list[str]
    items: int
    counts: dict[str, dict[str, int]]  # metric -> {"ok": n, "unscored": n}


@dataclass
class ScoreReport:
    """The outcome of `score()`: files written, judge usage and its estimated cost."""

    files: list[FileScores]
    manifest: Path
    judge: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = None
    cost_note: str = ""


@dataclass
class _Results:
    path: Path
    rows: list[dict]
    benchmark: str


def parse_data_args(values: Sequence[str]) -> dict[str | None, Path]:
    """`--data` values: `FILE` (key None) or `NAME=FILE` for one benchmark."""
    from lem.bench import get_benchmark

    out: dict[str | None, Path] = {}
    for value in values:
        name, sep, rest = value.partition("=")
        key = None
        if sep and name and not Path(value).exists():
            key = _benchmark_name(get_benchmark, name, f"--data {value}")
            value = rest
        if key in out:
            what = f"benchmark {key}" if key else "a bare FILE (use NAME=FILE for several)"
            raise LemError(f"--data given twice for {what}")
        out[key] = Path(value)
    return out


def _benchmark_name(get_benchmark, name: str, where: str) -> str:
    try:
        return get_benchmark(name).name
    except LemError as e:
        raise LemError(f"{where}: {e}")


def load_results(paths: Sequence[Path]) -> list[_Results]:
    """Read results files (one benchmark each), checking the fields scoring needs."""
    from lem.bench import get_benchmark

    loaded = []
    for path in paths:
        rows = read_jsonl(path, required=RESULT_FIELDS)
        if not rows:
            raise LemError(f"{path}: no results in it")
        names = {str(r["benchmark"]) for r in rows}
        if len(names) > 1:
            raise LemError(f"{path}: mixes benchmarks {', '.join(sorted(names))}; one per file")
        bench = _benchmark_name(get_benchmark, names.pop(), f"{path}:1: benchmark")
        loaded.append(_Results(Path(path), _last_per_id(rows), bench))
    return loaded


def _last_per_id(rows: list[dict]) -> list[dict]:
    # Append-only results may repeat an id after a resumed run: the last line wins.
    by_id = {str(r["id"]): r for r in rows}
    return list(by_id.values())


def load_items(
    benchmarks: Sequence[str], data: Mapping[str | None, Path]
) -> dict[str, dict[str, dict]]:
    """Items by benchmark and id: from `--data` files, else the benchmark's default source."""
    from lem.bench import get_benchmark

    unknown = [k for k in data if k is not None and k not in benchmarks]
    if unknown:
        raise LemError(f"--data {unknown[0]}=...: no results file of that benchmark was given")
    if None in data and len(benchmarks) > 1:
        raise LemError(
            f"--data {data[None]}: the results cover {', '.join(benchmarks)}; "
            "give one --data NAME=FILE per benchmark"
        )
    items = {}
    for name in benchmarks:
        path = data.get(name, data.get(None))
        items[name] = {str(i["id"]): i for i in get_benchmark(name).load(path, None, 0)}
    return items


def score(
    results: Sequence[Path],
    data: Mapping[str | None, Path],
    settings: ScoreSettings,
    client: ChatClient | None = None,
) -> ScoreReport:
    """Score results files into `settings.out`; see the module docstring."""
    if not results:
        raise LemError("no results files given")
    loaded = load_results(results)
    outputs = _output_paths(loaded, settings.out)
    benchmarks = sorted({r.benchmark for r in loaded})
    _check_judge(loaded, settings)
    items = load_items(benchmarks, data)
    lines: dict[Path, list[dict]] = {}
    judged: list[_Results] = []
    for res in loaded:
        if res.benchmark in EXACT_BENCHMARKS:
            lines[res.path] = [
                v for row in res.rows for v in gsm8k_verdicts(row, _item(res, row, items))
            ]
        else:
            judged.append(res)
    report = ScoreReport([], settings.out / MANIFEST, judge=settings.judge if judged else None)
    if judged:
        lines.update(_judge_all(judged, items, settings, client, report))
    for res in loaded:
        write_jsonl(outputs[res.path], lines[res.path])
        report.files.append(_file_scores(res, outputs[res.path], lines[res.path]))
    report.manifest = _write_manifest(loaded, data, settings, report)
    return report


def _output_paths(loaded: list[_Results], out: Path) -> dict[Path, Path]:
    outputs: dict[Path, Path] = {}
    for res in loaded:
        target = out / res.path.name
        if target in outputs.values():
            raise LemError(
                f"{res.path}: another results file has the same name; score it separately"
            )
        if target.resolve() == res.path.resolve():
            raise LemError(
                f"{res.path}: --out {out} would overwrite the results; pick another --out"
            )
        outputs[res.path] = target
    return outputs


def _check_judge(loaded: list[_Results], settings: ScoreSettings) -> None:
    need = [r for r in loaded if r.benchmark not in EXACT_BENCHMARKS]
    for res in need:
        if rubric_for(res.benchmark) is None:
            raise LemError(f"{res.path}: no scorer for benchmark {res.benchmark!r}")
    if need and not settings.judge:
        names = ", ".join(f"{r.path.name} ({r.benchmark})" for r in need)
        raise LemError(
            f"{names} need an LLM judge: pass --judge SPEC (e.g. gemini/gemini-2.0-flash, or "
            "openai/<model> with --judge-base-url), or score only GSM8K results"
        )


def _item(res: _Results, row: dict, items: dict[str, dict[str, dict]]) -> dict:
    item = items[res.benchmark].get(str(row["id"]))
    if item is None:
        raise LemError(
            f"{res.path}: id {row['id']!r} is not among the {res.benchmark} items; pass the "
            "items file the results were generated from (--data)"
        )
    return item


def _base(row: dict, benchmark: str) -> dict:
    return {"id": str(row["id"]), "benchmark": benchmark, "model": str(row["model"])}


def _gsm8k_version() -> str:
    # The extractor is GSM8K's "rubric": its code is what the version hash covers.
    from lem.bench import gsm8k

    source = "".join(
        inspect.getsource(f) for f in (gsm8k.extract_answer, gsm8k.extract_strict, gsm8k.is_correct)
    )
    return f"gsm8k-exact@{sha256_json(source)[:8]}"


def gsm8k_verdicts(row: dict, item: dict) -> list[dict]:
    """`accuracy` (the careful extractor) and `accuracy_strict` (`#### n` only) for one row."""
    from lem.bench.gsm8k import extract_answer, extract_strict, is_correct

    base = {**_base(row, "gsm8k"), "judge": "exact-match", "rubric_version": _gsm8k_version()}
    base.update(kind="binary", raw=None, gold=str(item["answer"]))
    response = row.get("response")
    if not isinstance(response, str):
        why = "no response text in the results line"
        return [
            {**base, "metric": m, "value": None, "status": "unscored", "reason": why}
            for m in ("accuracy", "accuracy_strict")
        ]
    out = []
    for metric, extraction in (
        ("accuracy", extract_answer(response)),
        ("accuracy_strict", extract_strict(response)),
    ):
        value = extraction.value
        right = value is not None and is_correct(value, item["answer"])
        reason = f"rule {extraction.rule}" if value is not None else "no answer found"
        out.append(
            {**base, "metric": metric, "value": int(right), "status": "ok", "reason": reason}
            | {"extracted": value, "rule": extraction.rule}
        )
    return out


def judge_item(rubric: Rubric, row: dict, item: dict) -> JudgeItem:
    """What the judge sees of one result: the item's question, references, the response."""
    question = item.get(rubric.question_field) or row.get("prompt") or ""
    references = {label: item[name] for label, name in rubric.references if name in item}
    return JudgeItem(str(question), references, row["response"])


def _judge_all(
    judged: list[_Results],
    items: dict[str, dict[str, dict]],
    settings: ScoreSettings,
    client: ChatClient | None,
    report: ScoreReport,
) -> dict[Path, list[dict]]:
    """Judge every judged results file, one batch per rubric (full concurrency)."""
    from lem.clients import make_client

    own = client is None
    if own:
        client = make_client(
            settings.judge,
            settings.judge_base_url,
            settings.concurrency,
            settings.max_retries,
            settings.timeout,
        )
    cache = None
    if settings.use_cache:
        cache = VerdictCache(settings.cache if settings.cache is not None else default_cache_path())
    judge = Judge(client, settings.judge, settings.judge_base_url, cache, settings.reasks)
    try:
        lines = {}
        for bench in sorted({r.benchmark for r in judged}):
            group = [r for r in judged if r.benchmark == bench]
            lines.update(_judge_benchmark(judge, rubric_for(bench), group, items))
    finally:
        if own:
            client.close()
        if cache is not None:
            cache.close()
    report.usage = judge.usage
    report.cost_usd, report.cost_note = estimate_cost(
        settings.judge, settings.judge_base_url, judge.usage
    )
    return lines


def _judge_benchmark(
    judge: Judge, rubric: Rubric, group: list[_Results], items: dict[str, dict[str, dict]]
) -> dict[Path, list[dict]]:
    todo: list[tuple[_Results, dict]] = []
    skipped: dict[int, str] = {}
    for res in group:
        for row in res.rows:
            if not isinstance(row.get("response"), str):
                skipped[len(todo)] = "no response text in the results line"
            todo.append((res, row))
    asks = [i for i in range(len(todo)) if i not in skipped]
    inputs = [judge_item(rubric, todo[i][1], _item(todo[i][0], todo[i][1], items)) for i in asks]
    found = judge.judge(rubric, inputs, label=f"judge {rubric.name}")
    verdicts = dict(zip(asks, found, strict=True))
    for i, why in skipped.items():
        verdicts[i] = Verdict("unscored", reason=why)
    lines: dict[Path, list[dict]] = {res.path: [] for res in group}
    for i, (res, row) in enumerate(todo):
        lines[res.path] += judged_lines(row, rubric, judge.spec, verdicts[i])
    return lines


def judged_lines(row: dict, rubric: Rubric, judge: str, verdict: Verdict) -> list[dict]:
    """One scores line per rubric metric for one judged result."""
    base = {**_base(row, rubric.benchmark), "judge": judge, "rubric_version": rubric.version}
    out = []
    for m in rubric.metrics:
        value = verdict.values[m.name] if verdict.values is not None else None
        out.append(
            {
                **base,
                "metric": m.name,
                "value": value,
                "status": verdict.status,
                "reason": verdict.reason,
                "kind": m.kind,
                "raw": verdict.raw,
                "attempts": verdict.attempts,
                "cached": verdict.cached,
            }
        )
    return out


def _file_scores(res: _Results, path: Path, lines: list[dict]) -> FileScores:
    counts: dict[str, dict[str, int]] = {}
    for line in lines:
        c = counts.setdefault(line["metric"], {"ok": 0, "unscored": 0})
        c[line["status"]] += 1
    models = sorted({str(r["model"]) for r in res.rows})
    return FileScores(res.path, path, res.benchmark, models, len(res.rows), counts)


def _write_manifest(
    loaded: list[_Results],
    data: Mapping[str | None, Path],
    settings: ScoreSettings,
    report: ScoreReport,
) -> Path:
    """manifest.json in OUT; entries for scores files from earlier runs there are kept."""
    out = settings.out
    previous = _previous_manifest(out)
    written = {f.scores.name for f in report.files}
    keep = {
        k: v
        for k, v in previous.get("files", {}).items()
        if k not in written and (out / k).exists()
    }
    files = dict(keep)
    for res, f in zip(loaded, report.files, strict=True):
        files[f.scores.name] = {
            "results": str(res.path),
            "results_sha256": sha256_file(res.path),
            "benchmark": f.benchmark,
            "models": f.models,
            "items": f.items,
            "judge": report.judge if f.benchmark not in EXACT_BENCHMARKS else "exact-match",
            "rubric_version": _version_of(f.benchmark),
            "counts": f.counts,
        }
    settings_dict = to_dict(settings) | {"judge_base_url": public_url(settings.judge_base_url)}
    inputs = {str(r.path): sha256_file(r.path) for r in loaded}
    inputs |= {f"data:{k or 'all'}": sha256_file(p) for k, p in data.items() if p.is_file()}
    usage = report.usage
    manifest = Manifest(
        stage="score",
        inputs=inputs,
        settings=settings_dict,
        outputs={name: "" for name in files},
        counts={name: entry["counts"] for name, entry in files.items()},
        extra={
            "files": files,
            "judge_usage": {
                "calls": usage.calls,
                "cached": usage.cached,
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "cost_usd_estimate": report.cost_usd,
                "cost_note": report.cost_note,
            },
        },
    )
    return manifest.write(out)


def _version_of(benchmark: str) -> str:
    if benchmark in EXACT_BENCHMARKS:
        return _gsm8k_version()
    return rubric_for(benchmark).version


def _previous_manifest(out: Path) -> dict[str, Any]:
    path = out / MANIFEST
    if not path.exists():
        return {}
    try:
        body = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise LemError(f"{path}: unreadable manifest ({e.msg}); remove it or pick another --out")
    return body if body.get("stage") == "score" else {}
