"""The abliteration run: prompt splits, directions, the unedited model's objectives, the
search and the export of one trial, in a locked run directory that resumes.

What is expensive and fixed for a run is computed once and kept: the directions
(directions.npz) and the unedited model's objectives (baseline.json). The settings that
shape a trial's numbers are kept in settings.json; a re-run that changes one of them is
refused, so one study never mixes trials measured two ways.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from lem.abliterate import (
    COSMETIC,
    AbliterateReport,
    AbliterateSettings,
    ExportReport,
)
from lem.abliterate.prompts import Split, load_prompts, split_prompts
from lem.config import to_dict
from lem.errors import LemError
from lem.store import (
    JsonlAppender,
    Manifest,
    check_output_dir,
    locked,
    read_json,
    replace_dir,
    sha256_json,
    sha256_tree,
    write_json,
)

SETTINGS_FILE = "settings.json"
DIRECTIONS_FILE = "directions.npz"
BASELINE_FILE = "baseline.json"
TRIALS_FILE = "trials.jsonl"
ANSWERS_FILE = "answers.jsonl"
PLOT_FILE = "pareto.png"


@dataclass
class Sets:
    """The run's prompt splits: direction prompts and held-out prompts, all disjoint."""

    harmful: Split
    harmless: Split
    safe: Split

    def record(self) -> dict:
        return {name: getattr(self, name).record() for name in ("harmful", "harmless", "safe")}


def prompt_sets(s: AbliterateSettings) -> Sets:
    """Load and split every prompt source (seeded; the same settings give the same sets)."""
    harmful_eval = load_prompts(s.harmful_eval)
    harmless_eval = load_prompts(s.harmless_eval) if s.harmless_eval else None
    harmful = split_prompts(
        load_prompts(s.harmful), s.n_train, s.n_eval, s.seed, harmful_eval, "harmful prompts"
    )
    harmless = split_prompts(
        load_prompts(s.harmless), s.n_train, s.n_eval, s.seed, harmless_eval, "harmless prompts"
    )
    safe = split_prompts([], 0, s.n_eval, s.seed, load_prompts(s.safe_eval), "safe prompts")
    return Sets(harmful, harmless, safe)


def check_run(out: Path, s: AbliterateSettings, inputs: dict) -> None:
    """A run directory holds one study: refuse settings or inputs that would change it."""
    path = out / SETTINGS_FILE
    if not path.is_file():
        return
    stored = read_json(path)
    mine, theirs_all = to_dict(s), stored.get("settings", {})
    for key in sorted((set(mine) | set(theirs_all)) - COSMETIC):
        theirs = theirs_all.get(key)
        if theirs != mine.get(key):
            raise LemError(
                f"{out}: its study was made with {key} = {theirs!r}, not {mine.get(key)!r}; "
                "use the same settings to continue it, or another --out"
            )
    for key, value in inputs.items():
        if stored.get("inputs", {}).get(key) != value:
            raise LemError(
                f"{out}: its study was made from another {key.replace('_', ' ')}; "
                "use another --out for a new study"
            )


def train_states(
    loaded: Any, sets: Sets, batch_size: int, stream: TextIO | None = None
) -> tuple[Any, Any]:
    """Last-token states after every layer of the harmful and the harmless train prompts."""
    from lem.abliterate.objectives import encode
    from lem.abliterate.residuals import last_token_states
    from lem.progress import Progress

    states = []
    for name, split in (("harmful", sets.harmful), ("harmless", sets.harmless)):
        ids = [encode(loaded, p.text) for p in split.train]
        progress = Progress(f"residuals {name}", len(ids), stream=stream)
        states.append(last_token_states(loaded.model, ids, batch_size, progress.update))
        progress.close()
    return states[0], states[1]


def held_out_sets(loaded: Any, sets: Sets) -> Any:
    """The held-out prompts of every objective, encoded for `loaded` (objectives.HeldOut)."""
    from lem.abliterate.objectives import held_out

    return held_out(loaded, sets.harmful.held_out, sets.safe.held_out, sets.harmless.held_out)


def directions_for(loaded: Any, sets: Sets, s: AbliterateSettings, out: Path, stream: TextIO):
    """The run's directions: read back, or computed from the train prompts and kept."""
    from lem.abliterate.direction import load_directions, refusal_directions, save_directions

    path = out / DIRECTIONS_FILE
    if path.is_file():
        return load_directions(path)
    harmful, harmless = train_states(loaded, sets, s.batch_size, stream)
    d = refusal_directions(harmful, harmless, s.benign_rank, s.orthogonalize)
    save_directions(path, d)
    return d


def make_judge(s: AbliterateSettings) -> Any:
    if s.judge is None:
        return None
    from lem.clients import ApiOptions, make_client
    from lem.judge import Judge
    from lem.judge.cache import VerdictCache, default_cache_path
    from lem.models import parse_model_ref

    ref = parse_model_ref(s.judge, s.judge_base_url)
    return Judge(make_client(ref, ApiOptions()), ref, VerdictCache(default_cache_path()))


def _trial_line(t: Any) -> str:
    p = t.params
    return (
        f"trial {t.number}: refusal {t.values[0]:.2f}  over-refusal {t.values[1]:.2f}  "
        f"KL {t.values[2]:.4f}  (direction of layer {p['source_layer']}, peak {p['peak']:.1f}, "
        f"span {p['span']:.1f}, max {p['weight']:.2f})  {t.user_attrs.get('seconds', 0):.0f}s"
    )


def trial_record(t: Any) -> dict:
    """A finished trial as trials.jsonl and the report keep it."""
    names = ("refusal", "over_refusal", "kl")
    return {
        "trial": t.number,
        **dict(zip(names, t.values, strict=True)),
        "params": t.params,
        **{k: v for k, v in t.user_attrs.items() if k in ("judge", "seconds", "retry_of")},
    }


def search(s: AbliterateSettings, stream: TextIO | None = None) -> AbliterateReport:
    """See `lem.abliterate.abliterate`."""
    stream = stream if stream is not None else sys.stderr
    started = time.perf_counter()
    out = check_output_dir(Path(s.out))
    with locked(out):
        return _search(s, out, stream, started)


def _prepare(s: AbliterateSettings, out: Path) -> tuple[Any, Sets, dict]:
    from lem.models import load_model, resolve_model_path

    sets = prompt_sets(s)
    inputs = {
        "base_model": sha256_tree(resolve_model_path(s.model)),
        "prompts": sha256_json(
            {
                name: [p.text for p in split.train + split.held_out]
                for name, split in vars(sets).items()
            }
        ),
    }
    check_run(out, s, inputs)
    loaded = load_model(s.model)
    write_json(out / SETTINGS_FILE, {"settings": to_dict(s), "inputs": inputs})
    return loaded, sets, inputs


def _search(s: AbliterateSettings, out: Path, stream: TextIO, started: float) -> AbliterateReport:
    from lem.abliterate.edit import Editor
    from lem.abliterate.objectives import answer_records, evaluate, first_token_logprobs
    from lem.abliterate.search import (
        Space,
        finished,
        open_study,
        pareto,
        plot_front,
        run_trials,
        suggested,
    )

    loaded, sets, inputs = _prepare(s, out)
    directions = directions_for(loaded, sets, s, out, stream)
    held = held_out_sets(loaded, sets)
    judge = make_judge(s)
    baseline = _baseline(loaded, held, s, out, judge, stream)
    base_logprobs = first_token_logprobs(loaded.model, held.harmless_ids)
    editor = Editor(loaded.model)
    layers = len(loaded.model.layers)

    def measure(source: int, profile, trial) -> Any:
        t0 = time.perf_counter()
        editor.apply(directions.vectors[source], profile.weights(layers))
        try:
            result = evaluate(loaded, held, base_logprobs, s.max_tokens, s.batch_size, judge)
        finally:
            editor.restore()
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 1))
        if result.judge is not None:
            trial.set_user_attr("judge", result.judge)
        with JsonlAppender(out / ANSWERS_FILE) as f:
            for record in answer_records(trial.number, result):
                f.write(record)
        return result

    def on_trial(t: Any) -> None:
        with JsonlAppender(out / TRIALS_FILE) as f:
            f.write(trial_record(t))
        print(_trial_line(t), file=stream, flush=True)

    study, requeued = open_study(out)
    space = Space(
        layers,
        (s.peak_min, s.peak_max),
        (s.span_min, s.span_max),
        (s.weight_min, s.weight_max),
        (s.source_min, s.source_max),
    )
    ran = run_trials(study, space, measure, s.trials, s.seed, s.startup_trials, on_trial)
    front = pareto(study)
    pick = suggested(finished(study), s.kl_max)
    plot = plot_front(study, out / PLOT_FILE, baseline)
    report = AbliterateReport(
        out=out,
        finished=len(finished(study)),
        ran=ran,
        requeued=requeued,
        baseline=baseline.summary(),
        front=[trial_record(t) for t in front],
        suggested=pick.number if pick is not None else None,
        plot=plot,
        seconds=round(time.perf_counter() - started, 1),
    )
    _write_manifest(s, out, inputs, sets, report, directions)
    return report


def _baseline(loaded, held, s: AbliterateSettings, out: Path, judge, stream: TextIO):
    """The unedited model's objectives on the held-out sets: measured once per run."""
    from lem.abliterate.objectives import Evaluation, answer_records, evaluate

    path = out / BASELINE_FILE
    if path.is_file():
        b = read_json(path)
        return Evaluation(b["refusal"], b["over_refusal"], b["kl"], judge=b.get("judge"))
    print("abliterate: measuring the unedited model", file=stream, flush=True)
    result = evaluate(loaded, held, None, s.max_tokens, s.batch_size, judge)
    with JsonlAppender(out / ANSWERS_FILE) as f:
        for record in answer_records(None, result):
            f.write(record)
    write_json(path, result.summary())
    print(
        f"unedited: refusal {result.refusal:.2f}  over-refusal {result.over_refusal:.2f}",
        file=stream,
        flush=True,
    )
    return result


def _write_manifest(s, out: Path, inputs: dict, sets: Sets, report, directions) -> None:
    outputs = [SETTINGS_FILE, DIRECTIONS_FILE, BASELINE_FILE, "study.db", PLOT_FILE]
    outputs += [f for f in (TRIALS_FILE, ANSWERS_FILE) if (out / f).is_file()]
    Manifest(
        stage="abliterate",
        inputs=inputs,
        settings=to_dict(s),
        outputs={name: "" for name in outputs},
        counts={
            "finished_trials": report.finished,
            "ran_now": report.ran,
            "requeued": len(report.requeued),
            "layers": int(directions.vectors.shape[0]),
        }
        | {
            f"{name}_{side}": len(getattr(split, side))
            for name, split in vars(sets).items()
            for side in ("train", "held_out")
        },
        extra={
            "splits": sets.record(),
            "baseline": report.baseline,
            "pareto": report.front,
            "suggested_trial": report.suggested,
            "mean_gap_by_layer": [round(float(x), 4) for x in directions.mean_gap],
        },
    ).write(out)


def export_trial(s: AbliterateSettings, stream: TextIO | None = None) -> ExportReport:
    """See `lem.abliterate.export`."""
    out = check_output_dir(Path(s.out))
    if not (out / "study.db").is_file() or not (out / DIRECTIONS_FILE).is_file():
        raise LemError(f"{out}: no abliteration study here; run `lem abliterate` first")
    with locked(out):
        return _export(s, out, stream if stream is not None else sys.stderr)


def _export(s: AbliterateSettings, out: Path, stream: TextIO) -> ExportReport:
    import shutil

    from lem.abliterate.direction import load_directions
    from lem.abliterate.edit import EditRecord, Profile, save_adapter
    from lem.abliterate.search import finished, open_study, suggested
    from lem.fuse import fuse
    from lem.models import load_model

    study, _ = open_study(out)
    done = {t.number: t for t in finished(study)}
    number = s.trial
    if number == -1:
        pick = suggested(list(done.values()), s.kl_max)
        if pick is None:
            raise LemError(f"{out}: no finished trial to export yet")
        number = pick.number
    if number not in done:
        known = ", ".join(map(str, sorted(done))) or "none"
        raise LemError(f"--trial {number}: not a finished trial of {out} (finished: {known})")
    t = done[number]
    directions = load_directions(out / DIRECTIONS_FILE)
    loaded = load_model(s.model)
    layers = len(loaded.model.layers)
    profile = Profile(t.params["peak"], t.params["span"], t.params["weight"])
    record = EditRecord(
        trial=number,
        source_layer=t.params["source_layer"],
        profile=profile,
        lambdas=[round(x, 6) for x in profile.weights(layers)],
        benign_rank=directions.benign_rank,
        orthogonalize=directions.orthogonalize,
        base_model=str(s.model),
    )
    target = out / f"trial-{number}"
    tmp = out / f".trial-{number}.adapter.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    save_adapter(loaded.model, directions.vectors[record.source_layer], record, tmp)
    adapter = target / "adapter"
    target.mkdir(exist_ok=True)
    replace_dir(tmp, adapter)
    print(f"abliterate: trial {number} adapter in {adapter}", file=stream, flush=True)
    model = None
    if s.fuse:
        model = fuse(s.model, adapter, target / "model")
        print(f"abliterate: trial {number} fused into {model}", file=stream, flush=True)
    values = dict(zip(("refusal", "over_refusal", "kl"), t.values, strict=True))
    return ExportReport(number, values, adapter, model)
