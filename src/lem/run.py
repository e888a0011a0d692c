"""`lem run`: generate -> train -> bench -> score -> report from one experiment file.

Every stage's settings come from `lem.experiment` (`resolve_stage`, `check_stage`), as the
stage commands' `--config` gets them, and all of them are resolved and checked (and the
base model found) before any stage starts, so a bad value anywhere costs nothing and
deletes nothing.

Each stage has a fingerprint: a hash of its resolved settings, its external inputs
(kernel, seeds, models by content, data files) and the fingerprints of the stages it
reads from. `RUN/stages.json` records the fingerprint of every stage that finished. A
stage whose fingerprint is unchanged is skipped; one that changed re-runs, and so does
everything downstream of it. A stage that was killed re-runs and resumes from its own
files (training's checkpoints, bench's appends, score's verdict cache). A stage replaces
its previous output only once the new one is complete: training writes to
`RUN/.train.next/` and is swapped into `RUN/train/` when it finishes; bench writes
replacement results beside the old ones. The run directory is locked while a run goes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from lem.config import to_dict
from lem.errors import LemError
from lem.experiment import STAGES, TABLES, Plan, check_stage, load_plan, resolve_stage
from lem.models import resolve_model_path
from lem.store import (
    atomic_write_text,
    locked,
    read_json,
    replace_dir,
    sha256_file,
    sha256_json,
    sha256_tree,
    write_json,
)

NEXT_ABLITERATE = ".abliterate.next"  # the abliterate stage's run, until complete
NEXT_TRAIN = ".train.next"  # where a new training runs until it is complete


@dataclass
class Context:
    """What stages share while a run goes."""

    plan: Plan
    stream: TextIO
    fingerprints: dict[str, str] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


def _identity(spec: str | None, base_url: str | None = None) -> str | None:
    from lem.models import parse_model_ref

    return parse_model_ref(spec, base_url).identity() if spec else None


def generate_inputs(ctx: Context, s) -> dict:
    from lem.generate import TEMPLATE_VERSION, teacher_identity
    from lem.kernel import load_kernel
    from lem.seeds import default_seeds_path

    kernel = load_kernel(s.kernel)
    seeds = Path(s.seeds) if s.seeds is not None else default_seeds_path("train")
    return {
        "template": TEMPLATE_VERSION,
        "kernel": kernel.text_sha256,
        "axioms": kernel.axioms_sha256,
        "seeds": sha256_file(seeds),
        "teacher": teacher_identity(s, kernel),
    }


def run_generate(ctx: Context, s, resume: bool) -> None:
    from lem.generate import generate

    ctx.summary["generate"] = generate(s).counts


def train_inputs(ctx: Context, s) -> dict:
    return {"base": _identity(s.model), "generate": ctx.fingerprints["generate"]}


@contextmanager
def aside(s, name: str, resume: bool) -> Iterator[Path]:
    """Point `s.out` at RUN/NAME (kept when resuming this fingerprint's run, else cleared)
    for the body, then swap it into the stage's directory: the previous output stays
    until the new one is complete, and stays if the body fails."""
    import shutil

    final = Path(s.out)
    s.out = final.parent / name
    if not resume:
        shutil.rmtree(s.out, ignore_errors=True)  # another config's partial run
    try:
        yield s.out
        replace_dir(s.out, final)
    finally:
        s.out = final


def run_train(ctx: Context, s, resume: bool) -> None:
    """Train into RUN/.train.next (resumed when it holds this fingerprint's checkpoints),
    then swap it into RUN/train: the previous training stays until the new one is done."""
    from lem.train import train
    from lem.train_files import latest_checkpoint

    with aside(s, NEXT_TRAIN, resume) as out:
        report = train(s, resume=resume and latest_checkpoint(out) is not None)
    ctx.summary["train"] = {
        "steps": report.steps,
        "first_train_loss": report.first_train_loss,
        "final_train_loss": report.final_train_loss,
        "best_val_loss": report.best_val_loss,
        "best_step": report.best_step,
        "tokens_per_second": round(report.tokens_per_second, 1),
    }


def abliterate_inputs(ctx: Context, s) -> dict:
    return {"base": _identity(s.model)}


def run_abliterate(ctx: Context, s, resume: bool) -> None:
    """Search into RUN/.abliterate.next (continuing a killed search of this fingerprint),
    fuse the suggested trial into its model/, then swap it into RUN/abliterate (the model
    [models] names "abliterate"): the previous run stays until the new one is done."""
    from dataclasses import replace

    from lem.abliterate import abliterate, export
    from lem.fuse import fuse

    with aside(s, NEXT_ABLITERATE, resume) as out:
        report = abliterate(s, ctx.stream)
        chosen = s.trial if s.trial is not None else -1
        exported = export(replace(s, trial=chosen, fuse=False), ctx.stream)
        fuse(s.model, exported.adapter, out / "model")
    ctx.summary["abliterate"] = {
        "trials": report.finished,
        "exported_trial": exported.trial,
        "baseline": report.baseline,
        **exported.values,
    }


def bench_inputs(ctx: Context, s) -> dict:
    made = {str(ctx.plan.tuned_model): "train", str(ctx.plan.abliterated_model): "abliterate"}
    models = {
        name: ctx.fingerprints[made[spec]]
        if spec in made
        else _identity(spec.split(":adapter=")[0])
        for name, spec in s.models.items()
    }
    data = {name: sha256_tree(path) for name, path in s.data.items()}
    return {"models": models, "data": data}


def run_bench(ctx: Context, s, resume: bool) -> None:
    from lem.bench.runner import run_bench as bench

    # Results made with another config (a retrained model) are stale: replaced, written
    # aside until complete.
    s.overwrite = True
    reports = bench(s, stream=ctx.stream)
    ctx.summary["bench"] = {
        f"{r.benchmark}_{r.model}": {"items": r.items, "hit_cap": r.hit_cap} for r in reports
    }


def score_inputs(ctx: Context, s) -> dict:
    return {"bench": ctx.fingerprints["bench"], "judge": _identity(s.judge, s.judge_base_url)}


def run_score(ctx: Context, s, resume: bool) -> None:
    from lem.score import score

    report = score(s)
    ctx.summary["score"] = {"judge": report.judge, "cost_usd": report.cost_usd}


def report_inputs(ctx: Context, s) -> dict:
    return {"score": ctx.fingerprints["score"]}


def run_report(ctx: Context, s, resume: bool) -> None:
    from lem.report import format_rows, load_scores, plot, skipped_metrics, summarise
    from lem.store import Manifest

    out = ctx.plan.stage_out("report")
    out.mkdir(parents=True, exist_ok=True)
    rows = summarise(load_scores(s.scores), s.baseline, seed=s.seed, resamples=s.resamples)
    skipped = skipped_metrics(s.scores)
    plot(rows, out / "report.png", s.baseline)
    for fmt, name in (("markdown", "report.md"), ("json", "report.json"), ("table", "report.txt")):
        text = format_rows(rows, fmt, s.baseline, "report.png", skipped)
        atomic_write_text(out / name, text + "\n")
    Manifest(
        stage="report",
        inputs={"scores": sha256_tree(ctx.plan.stage_out("score"))},
        settings=to_dict(s),
        outputs={name: "" for name in ("report.md", "report.json", "report.txt", "report.png")},
    ).write(out)


@dataclass(frozen=True)
class Stage:
    name: str
    inputs: Callable[[Context, Any], dict]
    run: Callable[[Context, Any, bool], None]
    outputs: tuple[str, ...]  # paths under RUN/ that must exist for the stage to count as done


PIPELINE = (
    Stage(
        "generate",
        generate_inputs,
        run_generate,
        ("training/train.jsonl", "training/valid.jsonl"),
    ),
    Stage("train", train_inputs, run_train, ("train/adapter", "train/model")),
    Stage("abliterate", abliterate_inputs, run_abliterate, ("abliterate/model",)),
    Stage("bench", bench_inputs, run_bench, ("results/manifest.json",)),
    Stage("score", score_inputs, run_score, ("scores/manifest.json",)),
    Stage("report", report_inputs, run_report, ("report/report.md",)),
)


@dataclass
class RunReport:
    """What `run_experiment` did: stages run and skipped, and the report's location."""

    out: Path
    ran: list[str]
    skipped: list[str]
    seconds: float
    report: Path
    stage_seconds: dict[str, float] = field(default_factory=dict)


def _fingerprint(stage: Stage, settings: Any, inputs: dict) -> str:
    plain = to_dict(settings)
    plain.pop("out", None)  # where outputs go is the run directory's business
    return sha256_json({"stage": stage.name, "settings": plain, "inputs": inputs})


def run_experiment(
    path: str | Path | None = None,
    quick: bool = False,
    out: Path | None = None,
    force: tuple[str, ...] = (),
    only: tuple[str, ...] = (),
    stream: TextIO | None = None,
) -> RunReport:
    """Run every stage that is not up to date (or, with `only`, just those); see above."""
    started = time.perf_counter()
    stream = stream if stream is not None else sys.stderr
    plan = load_plan(path, quick, out)
    for option, names in (("--force", force), ("--only", only)):
        for name in names:
            if name not in STAGES:
                raise LemError(f"{option} {name}: choose among {', '.join(STAGES)}")
    # Every stage's settings are resolved and checked before anything runs or is deleted:
    # first each value (a typo or a range anywhere), then the base model is found, then
    # each stage that will run is checked (names, specs, files that must exist).
    settings = {name: resolve_stage(plan, name) for name in STAGES}
    if not only or "train" in only:
        try:
            resolve_model_path(settings["train"].model)
        except LemError as e:
            raise LemError(f"{plan.source} [experiment] base: {e}") from None
    for name in STAGES:
        if not only or name in only:
            check_stage(plan, name, settings[name])
    with locked(plan.out):
        _write_resolved(plan)
        return _run(plan, settings, force, only, stream, started)


def _run(plan: Plan, settings: dict, force, only, stream: TextIO, started: float) -> RunReport:
    ctx = Context(plan, stream)
    record_path = plan.out / "stages.json"
    record = read_json(record_path) if record_path.exists() else {}
    ran, skipped, seconds = [], [], {}
    for stage in (st for st in PIPELINE if st.name != "abliterate" or plan.abliterates):
        s = settings[stage.name]
        fingerprint = _fingerprint(stage, s, stage.inputs(ctx, s))
        ctx.fingerprints[stage.name] = fingerprint
        previous = record.get(stage.name, {})
        complete = all((plan.out / p).exists() for p in stage.outputs)
        current = previous.get("fingerprint") == fingerprint
        wanted = not only or stage.name in only
        if not wanted or (
            current and previous.get("status") == "done" and complete and stage.name not in force
        ):
            why = "up to date" if wanted else "not asked for (--only)"
            print(f"[{stage.name}] {why}, skipped", file=stream)
            skipped.append(stage.name)
            continue
        resume = current and stage.name not in force
        print(f"[{stage.name}] {'resuming' if resume else 'running'}", file=stream)
        record[stage.name] = {"fingerprint": fingerprint, "status": "started"}
        write_json(record_path, record)
        t0 = time.perf_counter()
        stage.run(ctx, s, resume)
        seconds[stage.name] = round(time.perf_counter() - t0, 1)
        record[stage.name] = {
            "fingerprint": fingerprint,
            "status": "done",
            "seconds": seconds[stage.name],
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        write_json(record_path, record)
        ran.append(stage.name)
        print(f"[{stage.name}] done in {seconds[stage.name]}s", file=stream)
    total = time.perf_counter() - started
    return RunReport(plan.out, ran, skipped, total, plan.stage_out("report"), seconds)


def _write_resolved(plan: Plan) -> None:
    """The experiment as run, as a valid experiment file: the tables as written, with the
    run directory, the base model and `root` (where relative paths are read from) made
    absolute, and "base" resolved in comments; re-running it gives the same run."""
    import tomli_w

    tables = {t: dict(plan.raw.get(t, {})) for t in TABLES if t in plan.raw}
    tables["experiment"] = tables.get("experiment", {}) | {
        "out": str(plan.out.resolve()),
        "root": str(plan.root.resolve()),  # relative paths keep meaning what they meant
        **({"base": plan.base} if plan.base is not None else {}),
    }
    header = [
        f"# lem run of {plan.source}, written {time.strftime('%Y-%m-%d %H:%M:%S')}",
        f"# base model: {plan.base}",
        *(f"# [models] {name}: {spec}" for name, spec in plan.models.items()),
    ]
    text = "\n".join(header) + "\n\n" + tomli_w.dumps(tables)
    atomic_write_text(plan.out / "lem.resolved.toml", text)
