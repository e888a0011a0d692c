"""`lem run`: generate -> train -> bench -> score -> report from one experiment file.

Each stage has a fingerprint: a hash of its resolved settings, its external inputs
(kernel, seeds, models, data files) and the fingerprints of the stages it reads from.
`RUN/stages.json` records the fingerprint of every stage that finished. A stage whose
fingerprint is unchanged is skipped; one that changed re-runs, and so does everything
downstream of it (their fingerprints include its). A stage that was killed re-runs and
resumes from its own files (generate's work file, train's checkpoints, bench's appends,
score's verdict cache).
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from lem.config import read_toml, resolve, to_dict
from lem.errors import LemError
from lem.store import (
    atomic_write_text,
    read_json,
    sha256_file,
    sha256_json,
    sha256_tree,
    write_json,
)

STAGES = ("generate", "train", "bench", "score", "report")
TABLES = ("experiment", "models", *STAGES)
BASE = "base"  # in [models], teacher and judge: the experiment's base model
SERVE = "serve:"  # judge = "serve:<model>": a local mlx_lm.server as an OpenAI judge
SAMPLES = "samples:"  # bench data = "samples:<benchmark>": lem's shipped sample items
SHIPPED_KERNELS = {"full": "kernel", "brief": "kernel-brief"}  # [generate] kernel = "brief"


@dataclass
class Experiment:
    """The `[experiment]` table."""

    name: str = "lem"
    out: Path = Path("lem-run")
    base: str | None = None
    tuned: str = "lek"


@dataclass
class ReportSettings:
    """The `[report]` table."""

    baseline: str | None = None
    seed: int = 0


@dataclass
class Plan:
    """An experiment file resolved: where things go and what every stage will be given."""

    source: str  # the experiment file, or "quick" for the shipped profile
    root: Path  # relative paths in the file are relative to this directory
    experiment: Experiment
    raw: dict  # the parsed file, for lem.resolved.toml
    base_path: Path
    models: dict[str, str]
    tables: dict[str, dict] = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return self.root / self.experiment.out


def shipped_experiment(name: str) -> Path:
    """A shipped experiment file: "quick" or "default"."""
    return Path(str(resources.files("lem") / "data" / "experiments" / f"{name}.toml"))


def load_plan(path: str | Path | None, quick: bool = False, out: Path | None = None) -> Plan:
    """Read and check an experiment file (or the shipped quick profile)."""
    from lem.models import resolve_model_path

    if path is None and not quick:
        raise LemError(
            "give an experiment file (lem run lem.toml) or --quick; `lem init` writes one"
        )
    file = shipped_experiment("quick") if path is None else Path(path)
    raw = read_toml(file)
    unknown = set(raw) - set(TABLES)
    if unknown:
        raise LemError(
            f"{file}: unknown table(s) {', '.join(sorted(unknown))}; known: {', '.join(TABLES)}"
        )
    root = Path.cwd() if path is None else file.parent
    experiment = resolve(
        Experiment, raw.get("experiment", {}), {"out": out}, f"{file} [experiment]"
    )
    if experiment.base is None:
        raise LemError(f"{file} [experiment]: set base = the model to fine-tune")
    base_path = resolve_model_path(_local(experiment.base, root))
    models = {}
    for name, spec in raw.get("models", {}).items():
        if name == experiment.tuned:
            raise LemError(f"{file} [models]: {name!r} is the tuned model's name; pick another")
        models[name] = str(base_path) if spec == BASE else _local(str(spec), root)
    tables = {t: dict(raw.get(t, {})) for t in STAGES}
    return Plan(
        "quick" if path is None else str(file), root, experiment, raw, base_path, models, tables
    )


def _local(spec: str, root: Path) -> str:
    """A relative path in the file is relative to the file; ids and URLs stay as they are."""
    candidate = root / spec
    return str(candidate) if not Path(spec).is_absolute() and candidate.exists() else spec


def _path(value: Any, root: Path) -> Any:
    return str(root / value) if isinstance(value, str) and not Path(value).is_absolute() else value


# ----------------------------------------------------------------------------- stages


@dataclass
class Context:
    """What stages share while a run goes."""

    plan: Plan
    stream: TextIO
    fingerprints: dict[str, str] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


def generate_settings(ctx: Context):
    from lem.generate import GenerateSettings
    from lem.kernel import default_kernel_dir

    table = dict(ctx.plan.tables["generate"])
    if table.get("teacher", BASE) == BASE:
        table["teacher"] = f"mlx/{ctx.plan.base_path}"
    if table.get("kernel") in SHIPPED_KERNELS:
        table["kernel"] = str(default_kernel_dir().parent / SHIPPED_KERNELS[table["kernel"]])
    for key in ("kernel", "seeds"):
        if key in table:
            table[key] = _path(table[key], ctx.plan.root)
    table["out"] = str(ctx.plan.out / "training")
    return resolve(GenerateSettings, table, where=f"{ctx.plan.source} [generate]")


def generate_inputs(ctx: Context, s) -> dict:
    from lem.generate import TEMPLATE_VERSION
    from lem.kernel import load_kernel
    from lem.seeds import default_seeds_path

    kernel = load_kernel(s.kernel)
    seeds = Path(s.seeds) if s.seeds is not None else default_seeds_path("train")
    teacher = s.teacher[4:] if s.teacher.startswith("mlx/") else None
    return {
        "template": TEMPLATE_VERSION,
        "kernel": kernel.text_sha256,
        "axioms": kernel.axioms_sha256,
        "seeds": sha256_file(seeds),
        "teacher_model": sha256_tree(teacher) if teacher and Path(teacher).exists() else s.teacher,
    }


def run_generate(ctx: Context, s, resume: bool) -> None:
    from lem.generate import generate

    report = generate(s)
    ctx.summary["generate"] = report.counts


def train_settings(ctx: Context):
    from lem.train import TrainSettings

    table = dict(ctx.plan.tables["train"])
    table |= {
        "model": str(ctx.plan.base_path),
        "data": str(ctx.plan.out / "training"),
        "out": str(ctx.plan.out / "train"),
    }
    if "resume_adapter" in table:
        table["resume_adapter"] = _path(table["resume_adapter"], ctx.plan.root)
    return resolve(TrainSettings, table, where=f"{ctx.plan.source} [train]")


def train_inputs(ctx: Context, s) -> dict:
    return {"base": sha256_tree(ctx.plan.base_path), "generate": ctx.fingerprints["generate"]}


def run_train(ctx: Context, s, resume: bool) -> None:
    from lem.train import train
    from lem.train_files import latest_checkpoint

    if not resume:
        shutil.rmtree(s.out, ignore_errors=True)  # another config's checkpoints: start afresh
    report = train(s, resume=resume and latest_checkpoint(Path(s.out)) is not None)
    ctx.summary["train"] = {
        "steps": report.steps,
        "first_train_loss": report.first_train_loss,
        "final_train_loss": report.final_train_loss,
        "best_val_loss": report.best_val_loss,
        "tokens_per_second": round(report.tokens_per_second, 1),
    }


def bench_settings(ctx: Context):
    from lem.bench.runner import BenchSettings

    table = dict(ctx.plan.tables["bench"])
    models = dict(ctx.plan.models)
    models[ctx.plan.experiment.tuned] = str(ctx.plan.out / "train" / "model")
    data = {name: _data_path(value, ctx.plan.root) for name, value in table.get("data", {}).items()}
    table |= {"models": models, "data": data, "out": str(ctx.plan.out / "results")}
    return resolve(BenchSettings, table, where=f"{ctx.plan.source} [bench]")


def _data_path(value: str, root: Path) -> str:
    if value.startswith(SAMPLES):
        return str(resources.files("lem") / "data" / "samples" / f"{value[len(SAMPLES) :]}.jsonl")
    return _path(value, root)


def bench_inputs(ctx: Context, s) -> dict:
    tuned = str(ctx.plan.out / "train" / "model")
    models = {
        name: ctx.fingerprints["train"] if spec == tuned else _identity(spec)
        for name, spec in s.models.items()
    }
    data = {name: sha256_file(path) for name, path in s.data.items()}
    return {"models": models, "data": data}


def _identity(spec: str) -> str:
    path = Path(spec.split(":adapter=")[0])
    return sha256_tree(path) if path.exists() else spec


def run_bench(ctx: Context, s, resume: bool) -> None:
    from lem.bench.runner import run_bench as bench

    # Results made with another generation config (a retrained model) are stale: replace.
    s.overwrite = True
    reports = bench(s, stream=ctx.stream)
    ctx.summary["bench"] = {
        f"{r.benchmark}_{r.model}": {"items": r.items, "hit_cap": r.hit_cap} for r in reports
    }


def score_settings(ctx: Context):
    from lem.score import ScoreSettings

    table = dict(ctx.plan.tables["score"])
    judge = table.get("judge")
    if judge is not None and judge.startswith(SERVE):
        table["judge"] = "openai/default_model"  # the URL is set when the server starts
    elif judge == BASE:
        table["judge"] = f"mlx/{ctx.plan.base_path}"
    table["out"] = str(ctx.plan.out / "scores")
    return resolve(ScoreSettings, table, where=f"{ctx.plan.source} [score]")


def _served_model(ctx: Context) -> Path | None:
    judge = ctx.plan.tables["score"].get("judge")
    if judge is None or not judge.startswith(SERVE):
        return None
    name = judge[len(SERVE) :]
    from lem.models import resolve_model_path

    return ctx.plan.base_path if name == BASE else resolve_model_path(_local(name, ctx.plan.root))


def score_inputs(ctx: Context, s) -> dict:
    served = _served_model(ctx)
    judge = sha256_tree(served) if served is not None else s.judge
    return {"bench": ctx.fingerprints["bench"], "judge": judge}


def run_score(ctx: Context, s, resume: bool) -> None:
    import contextlib

    from lem.score import score
    from lem.serve import mlx_server

    bench = bench_settings(ctx)
    results = sorted(Path(bench.out).glob("*.jsonl"))
    data = {name: Path(path) for name, path in bench.data.items()}
    served = _served_model(ctx)
    with mlx_server(served) if served is not None else contextlib.nullcontext() as url:
        if url is not None:
            s.judge_base_url = url
        report = score(results, data, s)
    ctx.summary["score"] = {"judge": report.judge, "cost_usd": report.cost_usd}


def report_settings(ctx: Context) -> ReportSettings:
    return resolve(ReportSettings, ctx.plan.tables["report"], where=f"{ctx.plan.source} [report]")


def report_inputs(ctx: Context, s) -> dict:
    return {"score": ctx.fingerprints["score"]}


def run_report(ctx: Context, s: ReportSettings, resume: bool) -> None:
    from lem.report import format_rows, load_scores, plot, summarise
    from lem.store import Manifest

    out = ctx.plan.out / "report"
    out.mkdir(parents=True, exist_ok=True)
    rows = summarise(load_scores([ctx.plan.out / "scores"]), s.baseline, seed=s.seed)
    plot(rows, out / "report.png", s.baseline)
    for fmt, name in (("markdown", "report.md"), ("json", "report.json"), ("table", "report.txt")):
        atomic_write_text(out / name, format_rows(rows, fmt, s.baseline, "report.png") + "\n")
    Manifest(
        stage="report",
        inputs={"scores": sha256_tree(ctx.plan.out / "scores")},
        settings=to_dict(s),
        outputs={name: "" for name in ("report.md", "report.json", "report.txt", "report.png")},
    ).write(out)


@dataclass(frozen=True)
class Stage:
    name: str
    settings: Callable[[Context], Any]
    inputs: Callable[[Context, Any], dict]
    run: Callable[[Context, Any, bool], None]
    outputs: tuple[str, ...]  # paths under RUN/ that must exist for the stage to count as done


PIPELINE = (
    Stage(
        "generate",
        generate_settings,
        generate_inputs,
        run_generate,
        ("training/train.jsonl", "training/valid.jsonl"),
    ),
    Stage("train", train_settings, train_inputs, run_train, ("train/adapter", "train/model")),
    Stage("bench", bench_settings, bench_inputs, run_bench, ("results/manifest.json",)),
    Stage("score", score_settings, score_inputs, run_score, ("scores/manifest.json",)),
    Stage("report", report_settings, report_inputs, run_report, ("report/report.md",)),
)


# ----------------------------------------------------------------------------- the run


@dataclass
class RunReport:
    """What `run_experiment` did: stages run and skipped, and the report's location."""

    out: Path
    ran: list[str]
    skipped: list[str]
    seconds: float
    report: Path


def _fingerprint(stage: Stage, settings: Any, inputs: dict) -> str:
    plain = to_dict(settings)
    plain.pop("out", None)  # where outputs go is the run directory's business
    return sha256_json({"stage": stage.name, "settings": plain, "inputs": inputs})


def run_experiment(
    path: str | Path | None = None,
    quick: bool = False,
    out: Path | None = None,
    force: tuple[str, ...] = (),
    stream: TextIO | None = None,
) -> RunReport:
    """Run every stage that is not up to date; see the module docstring."""
    started = time.perf_counter()
    stream = stream if stream is not None else sys.stderr
    plan = load_plan(path, quick, out)
    for name in force:
        if name not in STAGES:
            raise LemError(f"--force {name}: choose among {', '.join(STAGES)}")
    plan.out.mkdir(parents=True, exist_ok=True)
    _write_resolved(plan)
    ctx = Context(plan, stream)
    record_path = plan.out / "stages.json"
    record = read_json(record_path) if record_path.exists() else {}
    ran, skipped = [], []
    # Every table is checked before any stage starts: a typo in [report] costs nothing.
    all_settings = {stage.name: stage.settings(ctx) for stage in PIPELINE}
    for stage in PIPELINE:
        settings = all_settings[stage.name]
        fingerprint = _fingerprint(stage, settings, stage.inputs(ctx, settings))
        ctx.fingerprints[stage.name] = fingerprint
        previous = record.get(stage.name, {})
        complete = all((plan.out / p).exists() for p in stage.outputs)
        if (
            previous.get("fingerprint") == fingerprint
            and previous.get("status") == "done"
            and complete
            and stage.name not in force
        ):
            print(f"[{stage.name}] up to date, skipped", file=stream)
            skipped.append(stage.name)
            continue
        resume = previous.get("fingerprint") == fingerprint and stage.name not in force
        print(f"[{stage.name}] {'resuming' if resume else 'running'}", file=stream)
        record[stage.name] = {"fingerprint": fingerprint, "status": "started"}
        write_json(record_path, record)
        t0 = time.perf_counter()
        stage.run(ctx, settings, resume)
        record[stage.name] = {
            "fingerprint": fingerprint,
            "status": "done",
            "seconds": round(time.perf_counter() - t0, 1),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        write_json(record_path, record)
        ran.append(stage.name)
        print(f"[{stage.name}] done in {record[stage.name]['seconds']}s", file=stream)
    return RunReport(plan.out, ran, skipped, time.perf_counter() - started, plan.out / "report")


def _write_resolved(plan: Plan) -> None:
    """The experiment as run: the file's tables plus the resolved base and models."""
    import tomli_w

    resolved = {t: dict(plan.raw.get(t, {})) for t in TABLES if t in plan.raw}
    resolved.setdefault("experiment", {})
    resolved["experiment"] |= {"base_path": str(plan.base_path), "source": plan.source}
    resolved["models"] = dict(plan.models)
    atomic_write_text(plan.out / "lem.resolved.toml", tomli_w.dumps(resolved))


def init_experiment(directory: str | Path, quick: bool = False, force: bool = False) -> Path:
    """Write a commented lem.toml (the full profile, or the quick one) into `directory`."""
    target = Path(directory) / "lem.toml"
    if target.exists() and not force:
        raise LemError(f"{target}: already exists; pass --force to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(shipped_experiment("quick" if quick else "default").read_text())
    return target
