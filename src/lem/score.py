"""`lem score`: results files -> scores files, each benchmark by its own scorers.

A results line (`id, benchmark, model, prompt, response` from `lem bench` or the LEM
reference layout, read unchanged; or a log-likelihood line with `continuations` and
`logprobs`) is joined by `id` to its benchmark item, which holds the gold answer, the
choices' truth, the prompt's slice (XSTest's safe/unsafe) or the judge's references.
The benchmark's definition says how it is scored (`lem.bench.scorers`): exact match,
log-likelihood, the refusal classifier, an LLM judge. Judged metrics are skipped, with
a note, when no `--judge` is given; every other metric is always scored.

Scores files are written whole (aside, then swapped in) on each run; judge verdicts
live in the verdict cache as they arrive, so a re-run after a crash or a re-score of the
same content costs no judge calls. OUT is locked while a run writes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lem.bench.definition import Benchmark
from lem.bench.scorers import Context, Scorer
from lem.clients import ApiOptions, ChatClient, estimate_cost, public_url
from lem.config import check, setting, to_dict
from lem.errors import LemError
from lem.judge import Usage
from lem.store import (
    Manifest,
    check_output_file,
    locked,
    read_jsonl,
    read_manifest,
    sha256_file,
    sha256_tree,
    write_jsonl,
)

RESULT_FIELDS = ("id", "benchmark", "model")


@dataclass
class ScoreSettings(ApiOptions):
    """Everything `lem score` takes; the `[score]` table of lem.toml uses these names."""

    results: list[Path] = field(default_factory=list)  # results files or directories
    data: dict[str, str] = field(default_factory=dict)  # benchmark ("" for all) -> items file
    judge: str | None = setting(
        None, "Judge for judged metrics: gemini/<model>, openai/<model>, mlx/<path>, serve:<path>"
    )
    judge_base_url: str | None = setting(None, "Server URL for openai/ judges")
    reasks: int = setting(2, "Follow-up turns after a reply that is not a verdict", min=0)
    out: Path = setting(Path("scores"), "Output directory")
    cache: Path | None = setting(None, "Verdict cache", shown="$LEM_HOME/verdicts.sqlite")
    use_cache: bool = setting(True, "Read and write the verdict cache", flag="--cache-verdicts")
    kernel: Path | None = setting(
        None, "Kernel directory the ethics rubric is built from", shown="shipped"
    )


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
    """The outcome of `score()`: files written, metrics skipped, judge usage and cost."""

    files: list[FileScores]
    manifest: Path
    judge: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = None
    cost_note: str = ""
    skipped: dict[str, list[str]] = field(default_factory=dict)  # benchmark -> judged metrics


@dataclass
class Results:
    """One results file: its rows (last line per id) and benchmark."""

    path: Path
    rows: list[dict]
    bench: Benchmark


def results_files(paths: Sequence[Path]) -> list[Path]:
    """The results files given, with directories expanded to their *.jsonl files."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(path.glob("*.jsonl"))
            if not found:
                raise LemError(f"{path}: no *.jsonl results files in this directory")
            files += found
        else:
            files.append(path)
    if not files:
        raise LemError("no results files given")
    return list(dict.fromkeys(files))


def load_results(paths: Sequence[Path]) -> list[Results]:
    """Read results files (one benchmark each), checking the fields scoring needs."""
    from lem.bench import get_benchmark

    loaded = []
    for path in results_files(paths):
        rows = read_jsonl(path, required=RESULT_FIELDS)
        if not rows:
            raise LemError(f"{path}: no results in it")
        names = {str(r["benchmark"]) for r in rows}
        if len(names) > 1:
            raise LemError(f"{path}: mixes benchmarks {', '.join(sorted(names))}; one per file")
        try:
            bench = get_benchmark(names.pop())
        except LemError as e:
            raise LemError(f"{path}:1: benchmark: {e}")
        by_id = {str(r["id"]): r for r in rows}  # a resumed run may repeat an id: last wins
        loaded.append(Results(path, list(by_id.values()), bench))
    return loaded


def load_items(
    benchmarks: Sequence[Benchmark], data: Mapping[str, str | Path]
) -> dict[str, dict[str, dict]]:
    """Items by benchmark and id: from `data` files ("" for a single benchmark), else each
    benchmark's default source (shipped data, else the hub)."""
    names = [b.name for b in benchmarks]
    unknown = [k for k in data if k and k not in names]
    if unknown:
        raise LemError(f"--data {unknown[0]}=...: no results file of that benchmark was given")
    if "" in data and len(names) > 1:
        raise LemError(
            f"--data {data['']}: the results cover {', '.join(names)}; "
            "give one --data NAME=FILE per benchmark"
        )
    items = {}
    for bench in benchmarks:
        path = data.get(bench.name, data.get(""))
        items[bench.name] = {str(i["id"]): i for i in bench.load(path, None, 0)}
    return items


def _output_paths(loaded: list[Results], out: Path) -> dict[Path, Path]:
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


def _check_items(res: Results, items: dict[str, dict]) -> None:
    for row in res.rows:
        if str(row["id"]) not in items:
            raise LemError(
                f"{res.path}: id {row['id']!r} is not among the {res.bench.name} items; pass "
                "the items file the results were generated from (--data)"
            )


def check_settings(s: ScoreSettings) -> None:
    """Every field's rules (for settings built in Python), then what they cannot see: a
    judge spec that names a judge, a usable cache path and an existing kernel directory."""
    from lem.kernel import load_kernel
    from lem.models import parse_model_ref

    check(s, "score")
    if s.judge is not None:
        parse_model_ref(s.judge, s.judge_base_url)
    if s.cache is not None and s.use_cache:
        check_output_file(s.cache, "--cache")
    if s.kernel is not None:
        load_kernel(s.kernel)


def score(settings: ScoreSettings, client: ChatClient | None = None) -> ScoreReport:
    """Score `settings.results` into `settings.out`; see the module docstring.

    `client` replaces the judge client built from `settings.judge` (tests, or a shared
    client); a client passed in is not closed.
    """
    check_settings(settings)
    loaded = load_results(settings.results)
    outputs = _output_paths(loaded, settings.out)
    benches = list({r.bench.name: r.bench for r in loaded}.values())
    items = load_items(benches, settings.data)
    for res in loaded:
        _check_items(res, items[res.bench.name])
    with locked(settings.out):
        read_manifest(settings.out, "score")  # another stage's directory: refuse now
        with _judging(settings, loaded, client) as ctx:
            lines, skipped = _score_all(loaded, items, ctx)
        report = ScoreReport([], settings.out / "manifest.json", skipped=skipped)
        if ctx.judge is not None:
            report.judge = ctx.judge.spec
            report.usage = ctx.judge.usage
            report.cost_usd, report.cost_note = estimate_cost(
                ctx.judge.ref, report.usage.prompt_tokens, report.usage.completion_tokens
            )
        for res in loaded:
            write_jsonl(outputs[res.path], lines[res.path])
            report.files.append(_file_scores(res, outputs[res.path], lines[res.path]))
        report.manifest = _write_manifest(loaded, settings, report, ctx)
    return report


def _score_all(
    loaded: list[Results], items: dict[str, dict[str, dict]], ctx: Context
) -> tuple[dict[Path, list[dict]], dict[str, list[str]]]:
    """Every scorer of every benchmark over all its files at once (one judge batch each)."""
    lines: dict[Path, list[dict]] = {res.path: [] for res in loaded}
    skipped: dict[str, list[str]] = {}
    for bench in {r.bench.name: r.bench for r in loaded}.values():
        group = [r for r in loaded if r.bench.name == bench.name]
        for scorer in bench.scorers:
            if scorer.needs_judge and ctx.judge is None:
                skipped.setdefault(bench.name, []).extend(_metric_names(scorer, ctx))
                continue
            owners = [res.path for res in group for _ in res.rows]
            rows = [row for res in group for row in res.rows]
            scored = scorer.score(rows, items[bench.name], ctx)
            for path, row_lines in zip(owners, scored, strict=True):
                lines[path] += row_lines
    return lines, skipped


def _metric_names(scorer: Scorer, ctx: Context) -> list[str]:
    names = [m for m, _ in scorer.metrics]
    if not names and hasattr(scorer, "rubric_for"):
        try:
            rubric = scorer.rubric_for(ctx)
            names = [m.name for m in rubric.metrics] + [m for m, _ in scorer.derived]
        except LemError:
            names = ["(judge rubric)"]
    return names


class _judging:
    """The scoring context; with a judge, its client and cache for the run's duration."""

    def __init__(self, settings: ScoreSettings, loaded: list[Results], client: ChatClient | None):
        self.settings, self.loaded, self.client = settings, loaded, client
        self.own = client is None
        self.cache = None

    def __enter__(self) -> Context:
        from lem.kernel import load_kernel

        s = self.settings
        kernel = load_kernel(s.kernel) if s.kernel is not None else None
        judged = any(r.bench.is_judged() for r in self.loaded)
        if not (judged and s.judge):
            return Context(None, kernel)
        from lem.judge import Judge
        from lem.judge.cache import VerdictCache, default_cache_path
        from lem.models import parse_model_ref

        ref = parse_model_ref(s.judge, s.judge_base_url)
        if self.client is None:
            from lem.clients import make_client

            self.client = make_client(ref, s)
        if s.use_cache:
            self.cache = VerdictCache(s.cache if s.cache is not None else default_cache_path())
        return Context(Judge(self.client, ref, self.cache, s.reasks), kernel)

    def __exit__(self, *exc: object) -> None:
        if self.own and self.client is not None:
            self.client.close()
        if self.cache is not None:
            self.cache.close()


def _file_scores(res: Results, path: Path, lines: list[dict]) -> FileScores:
    counts: dict[str, dict[str, int]] = {}
    for line in lines:
        c = counts.setdefault(line["metric"], {"ok": 0, "unscored": 0})
        c[line["status"]] += 1
    models = sorted({str(r["model"]) for r in res.rows})
    return FileScores(res.path, path, res.bench.name, models, len(res.rows), counts)


def _write_manifest(
    loaded: list[Results], settings: ScoreSettings, report: ScoreReport, ctx: Context
) -> Path:
    """manifest.json in OUT; entries for scores files from earlier runs there are kept."""
    out = settings.out
    previous = read_manifest(out, "score")
    written = {f.scores.name for f in report.files}
    files = {
        k: v
        for k, v in previous.get("files", {}).items()
        if k not in written and (out / k).exists()
    }
    for res, f in zip(loaded, report.files, strict=True):
        files[f.scores.name] = {
            "results": str(res.path),
            "results_sha256": sha256_file(res.path),
            "benchmark": f.benchmark,
            "models": f.models,
            "items": f.items,
            "scorers": _scorer_versions(res.bench, ctx),
            "counts": f.counts,
        }
    settings_dict = to_dict(settings) | {"judge_base_url": public_url(settings.judge_base_url)}
    inputs = {str(r.path): sha256_file(r.path) for r in loaded}
    inputs |= {
        f"data:{k or 'all'}": sha256_tree(p) for k, p in settings.data.items() if Path(p).exists()
    }
    usage = report.usage
    manifest = Manifest(
        stage="score",
        inputs=inputs,
        settings=settings_dict,
        outputs={name: "" for name in files},
        counts={name: entry["counts"] for name, entry in files.items()},
        extra={
            "files": files,
            "judge": {"spec": report.judge, "identity": ctx.judge.identity if ctx.judge else None},
            "judge_usage": {
                "calls": usage.calls,
                "turns": usage.turns,
                "cached": usage.cached,
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "cost_usd_estimate": report.cost_usd,
                "cost_note": report.cost_note,
            },
            "skipped_without_judge": report.skipped,
        },
    )
    return manifest.write(out)


def _scorer_versions(bench: Benchmark, ctx: Context) -> dict[str, Any]:
    out = {}
    for scorer in bench.scorers:
        if scorer.needs_judge and ctx.judge is None:
            out[scorer.name] = None
            continue
        out[scorer.name] = scorer.version(ctx)
    return out
