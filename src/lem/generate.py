"""`lem generate`: seeds + kernel -> chat examples written by a teacher, gated, split by seed.

The teacher sees the axioms as system text and the kernel text around each seed prompt;
the example keeps only the bare prompt and the answer, so the student learns to reason
from the principles without ever seeing them.

How a run goes:

- Plan. One request per seed by default, in seed-file order. `n_examples` picks that
  many requests round-robin over a seeded shuffle of the seeds: fewer than the seeds
  uses a subset, more gives a second, third... sample of each seed (sample k uses
  sampling seed `seed + k` and, with voices on, a different voice). Seeds go to train
  or valid by seed id before anything is generated, so no seed is in both.
- Ask. Raw answers are appended durably to `OUT/work/teacher-<key>.jsonl` as each one
  finishes. The key hashes what shapes a raw answer (teacher, base URL, kernel, prompt
  template, sampling settings), so a changed config starts a new work file and never
  mixes with old answers; each line also carries the hash of its exact request, so an
  edited seed prompt is asked again while the others are reused. A killed run re-run
  asks only what is missing; failed calls from an earlier run are asked again.
- Gate and write. Answers cut off by the token cap are asked again with twice the cap,
  up to `length_retries` times, then dropped; never kept truncated. Empty, too short,
  provider-filtered, kernel-referencing (unless allowed) and duplicate answers are
  dropped; formulaic openings are counted. `train.jsonl`, `valid.jsonl`,
  `rejected.jsonl` and `manifest.json` are written atomically from the work file.
"""

from __future__ import annotations

import random
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lem.clients import ChatClient, ChatRequest, ChatResult, public_url
from lem.config import to_dict
from lem.errors import LemError
from lem.progress import Progress
from lem.store import JsonlAppender, Manifest, read_jsonl, repair_tail, sha256_file, sha256_json
from lem.store import write_jsonl as _write_jsonl

# Bump when the teacher prompt changes: it is part of the work-file key.
TEMPLATE_VERSION = 3  # 3: the axioms' worked examples and hard lines are shown
LENGTH_GROWTH = 2  # each regeneration of a truncated answer doubles the token cap

# Styles for the *answer*, not personas of the asker: the example keeps the bare seed
# prompt, so anything about the asker would leave the answer replying to unseen text.
VOICES = {
    "plain": "Plain and direct: short sentences, everyday words, the point first.",
    "warm": "Warm and conversational, like a thoughtful friend who knows the subject.",
    "structured": "Organised: a one-line answer first, then a few short points or steps.",
    "brief": "Brief: a complete answer in a few sentences, nothing padded.",
    "careful": "Precise and careful, like a good professional talking to a capable adult.",
    "reflective": "Reflective: name what is at stake for the person, then give your view.",
}

TEACHER_ROLE = """\
You write one reply, as an assistant, to a message from a person. The reply is shown to \
that person on its own: they have never seen the principles above or anything else given \
to you here. So:
- Let the principles shape what you say and do, and give your reasons in plain words \
about this person's situation: their choices, their data, what is honest, what they have \
agreed to, how they deserve to be treated.
- Never mention axioms, a framework, a kernel, guidelines, instructions or any text you \
were given, and never say you were told, trained or programmed to act a certain way.
- Help fully with what is reasonable. Where part of a request would cause real harm, \
decline that part plainly, say why, and offer what you can do instead.
- No stock openings such as "As an AI", "Certainly!" or "I'm sorry, but": start with \
the substance.
- Write only the reply: no title, no notes about this task, no repeating of the message."""

TEACHER_BACKGROUND = """\
Background you have absorbed (draw on it, never refer to it):

{kernel}"""

TEACHER_LENGTH = "Keep each reply under about {words} words."

# Phrases that give away text the student never sees. One name per pattern so the
# manifest can say which ones fired; `{names}` is filled with the kernel's axiom names.
KERNEL_REF_PATTERNS = {
    "the_axioms": r"\b(?:the|these|those|this|our|my|your|five|each)\s+axioms?\b",
    "numbered": r"\b(?:axiom|principle)\s*(?:#\s*)?(?:\d+|[ivx]+)\b",
    "five_principles": r"\b(?:the|these|all|my|our)\s+(?:five|5)\s+(?:principles|values|"
    r"commitments|pillars)\b",
    "named_axiom": r"\b(?:{names})\s+axiom\b",
    "ethical_kernel": r"\b(?:ethical|moral|values?)\s+kernel\b",
    "kernel_given": r"\b(?:the|this)\s+kernel\s+(?:provided|above|given|you|i\s+(?:was|have|am)|"
    r"text|document|says|states|describes|asks|tells)\b",
    "framework_given": r"\b(?:the|this|that|our|my|your)\s+(?:ethical\s+|moral\s+)?framework\s+"
    r"(?:provided|given|above|you\s+(?:gave|shared|provided|set\s+out))\b",
    "ethical_framework": r"\b(?:this|the|our|my)\s+ethical\s+framework\b",
    "provided_principles": r"\b(?:provided|given|above|supplied)\s+(?:framework|axioms?|"
    r"principles|guidelines|kernel|background|rules)\b",
    "principles_provided": r"\b(?:principles|guidelines|rules|background|framework|axioms?|"
    r"kernel)\s+(?:provided|"
    r"given|above|supplied|you\s+(?:gave|shared|provided)|i(?:\s+was|'ve\s+been|’ve\s+been|"
    r"\s+have\s+been)\s+given)\b",
    "according_to": r"\b(?:according\s+to|as\s+(?:stated|outlined|described|set\s+out)\s+in|"
    r"in\s+line\s+with|guided\s+by)\s+(?:(?:my|these|our)\s+(?:framework|kernel|axioms?|"
    r"guidelines|principles|rules|instructions)|the\s+(?:framework|kernel|axioms?|principles|"
    r"instructions))\b(?!\s+of\b)",
    "my_guidelines": r"\bmy\s+(?:guidelines|programming|instructions|principles|rules|"
    r"core\s+values)\b",
    # Not "I was told": people quote that in their own questions, and answers echo it.
    "instructed": r"\bi(?:\s+was|\s+am|'m|’m|\s+have\s+been|'ve\s+been|’ve\s+been)\s+"
    r"(?:instructed|programmed|designed|given\s+(?:principles|guidelines|instructions|rules))\b",
    "system_prompt": r"\bsystem\s+(?:prompt|message|instructions)\b",
    "background_ref": r"\bthe\s+background\s+(?:text|material|document|you|i)\b",
}

# Stock openings worth watching (counted, not dropped): the student copies them.
FORMULAIC_OPENINGS = {
    "as_an_ai": r"as\s+an?\s+(?:ai|artificial|language\s+model|assistant)",
    "i_cannot": r"i\s+(?:cannot|can\s*not|can't|can’t|won't|won’t|am\s+unable|'m\s+unable)",
    "sorry": r"(?:i'm|i’m|i\s+am)\s+(?:so\s+)?sorry|(?:i\s+)?apologi[sz]e",
    "certainly": r"(?:certainly|absolutely|of\s+course|sure)\b\s*[!,.]",
    "great_question": r"(?:what\s+a\s+)?(?:great|good|excellent|fantastic)\s+question",
    "i_understand": r"i\s+(?:understand|hear\s+you|appreciate)",
}


@dataclass
class GenerateSettings:
    """Everything `lem generate` takes; the `[generate]` table of lem.toml uses these names."""

    teacher: str | None = None  # mlx/<path-or-id>, gemini/<model>, openai/<model>
    teacher_base_url: str | None = None  # OpenAI-compatible server, or a Gemini stand-in
    kernel: Path | None = None  # kernel directory; None: the shipped kernel
    seeds: Path | None = None  # seed JSONL; None: the shipped training seeds
    out: Path = Path("training")
    n_examples: int | None = None  # teacher requests; None: one per seed
    valid_fraction: float = 0.1  # share of seed ids held out for valid.jsonl
    max_tokens: int = 512
    temperature: float = 0.7
    seed: int = 0
    min_chars: int = 80
    length_retries: int = 2  # regenerations of a truncated answer, each with twice the cap
    concurrency: int = 8  # API teachers: requests in flight
    max_retries: int = 4  # API teachers: retries of a failed call, with backoff
    timeout: float = 120.0  # API teachers: seconds per call
    batch_size: int = 32  # requests handed to the client at a time (a local teacher's batch)
    voices: bool = False
    voice_seed: int = 0
    repetition_penalty: float | None = None  # local (mlx/) teachers only; API teachers ignore it
    allow_kernel_refs: bool = False  # keep (but still count) answers that cite the kernel


@dataclass
class PlanItem:
    """One teacher request: a seed, its sample number, its voice and its split."""

    id: str
    seed_id: str
    prompt: str
    sample: int
    voice: str | None
    split: str  # "train" | "valid"
    order: int  # position of the seed in the seed file, for output order


@dataclass
class GenerateReport:
    """What a run made: output paths, counts per gate, failed ids."""

    out: Path
    files: dict[str, Path]
    counts: dict
    failures: list[dict]
    manifest: Path
    work_file: Path
    warnings: list[str] = field(default_factory=list)


def check_settings(s: GenerateSettings) -> None:
    """One-line LemError naming the option for values that cannot work."""
    if not s.teacher:
        raise LemError("generate: no teacher; pass --teacher (mlx/<dir>, gemini/<model>, ...)")
    positive = {"max_tokens": s.max_tokens, "concurrency": s.concurrency}
    positive |= {"batch_size": s.batch_size, "timeout": s.timeout}
    for name, value in positive.items():
        if value <= 0:
            raise LemError(f"generate: {name} must be > 0, got {value}")
    for name in ("min_chars", "length_retries", "max_retries"):
        if getattr(s, name) < 0:
            raise LemError(f"generate: {name} must be >= 0, got {getattr(s, name)}")
    if s.n_examples is not None and s.n_examples <= 0:
        raise LemError(f"generate: n_examples must be > 0, got {s.n_examples}")
    if not 0 <= s.valid_fraction < 1:
        raise LemError(f"generate: valid_fraction must be in [0, 1), got {s.valid_fraction}")
    if s.temperature < 0:
        raise LemError(f"generate: temperature must be >= 0, got {s.temperature}")


def build_plan(seeds: Sequence, settings: GenerateSettings) -> list[PlanItem]:
    """The requests to make, in seed-file order, each assigned to train or valid by seed id."""
    if not seeds:
        raise LemError("generate: the seed file has no seeds")
    position = {s.id: i for i, s in enumerate(seeds)}
    order = list(seeds)
    random.Random(settings.seed).shuffle(order)
    n = settings.n_examples if settings.n_examples is not None else len(seeds)
    if n > len(seeds) and settings.temperature == 0 and not settings.voices:
        raise LemError(
            f"generate: n_examples {n} > {len(seeds)} seeds asks for several answers per seed, "
            "but temperature 0 without voices makes them identical; set --temperature > 0 "
            "or --voices"
        )
    picks = [(order[i % len(order)], i // len(order)) for i in range(n)]
    valid = _valid_seed_ids(sorted({s.id for s, _ in picks}), settings)
    items = [
        PlanItem(
            id=f"{s.id}-s{k}",
            seed_id=s.id,
            prompt=s.prompt,
            sample=k,
            voice=_voice(s.id, k, settings),
            split="valid" if s.id in valid else "train",
            order=position[s.id],
        )
        for s, k in picks
    ]
    return sorted(items, key=lambda it: (it.order, it.sample))


def _valid_seed_ids(seed_ids: list[str], settings: GenerateSettings) -> set[str]:
    if settings.valid_fraction == 0 or len(seed_ids) < 2:
        return set()
    n = min(max(1, round(settings.valid_fraction * len(seed_ids))), len(seed_ids) - 1)
    shuffled = list(seed_ids)
    random.Random(f"split:{settings.seed}").shuffle(shuffled)
    return set(shuffled[:n])


def _voice(seed_id: str, sample: int, settings: GenerateSettings) -> str | None:
    # A per-seed permutation: samples of one seed get different voices, and an item's
    # voice does not depend on how many items the plan has (resume stays stable).
    if not settings.voices:
        return None
    names = sorted(VOICES)
    random.Random(f"voice:{settings.voice_seed}:{seed_id}").shuffle(names)
    return names[sample % len(names)]


def teacher_messages(kernel, prompt: str, voice: str | None, max_tokens: int) -> list[dict]:
    """The teacher's view: axioms, kernel and role as the system message; the prompt as asked.

    Everything but the person's message sits in the system message, so it is the same for
    every request: a local teacher computes it once (shared-prefix caching), and a small
    teacher answers the message itself instead of echoing a wrapped-up task.
    """
    words = max(30, round(max_tokens * 0.55 / 10) * 10)
    system = "\n\n".join(
        [
            kernel.system_text().rstrip(),
            TEACHER_BACKGROUND.format(kernel=kernel.text.strip()),
            TEACHER_ROLE,
            TEACHER_LENGTH.format(words=words),
        ]
    )
    user = prompt if voice is None else f"{prompt}\n\n(Style for this reply: {VOICES[voice]})"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def work_key(settings: GenerateSettings, kernel) -> str:
    """Hash of everything that shapes a raw answer except the seed prompt itself."""
    return sha256_json(
        {
            "teacher": settings.teacher,
            "base_url": settings.teacher_base_url,
            "kernel": kernel.text_sha256,
            "axioms": kernel.axioms_sha256,
            "template": TEMPLATE_VERSION,
            "max_tokens": settings.max_tokens,
            "length_retries": settings.length_retries,
            "temperature": settings.temperature,
            "repetition_penalty": settings.repetition_penalty,
            "seed": settings.seed,
        }
    )


@dataclass
class _Job:
    """One request on its way: the plan item, its round and its exact request."""

    item: PlanItem
    round: int
    request: ChatRequest
    request_sha: str


def _request(item: PlanItem, messages: list[dict], rnd: int, s: GenerateSettings) -> ChatRequest:
    return ChatRequest(
        messages=messages,
        max_tokens=s.max_tokens * LENGTH_GROWTH**rnd,
        temperature=s.temperature,
        seed=s.seed + item.sample,
        repetition_penalty=s.repetition_penalty,
    )


def load_work(path: Path, shas: dict[str, str]) -> dict[str, dict]:
    """The latest raw answer per item id whose request still matches the plan."""
    if not path.exists():
        return {}
    repair_tail(path)
    latest: dict[str, dict] = {}
    for record in read_jsonl(path, required=("id", "request_sha", "round")):
        if shas.get(record["id"]) == record["request_sha"]:
            latest[record["id"]] = record
    return latest


def _is_final(record: dict, settings: GenerateSettings) -> bool:
    if record.get("error") is not None:
        return True
    return record.get("finish_reason") != "length" or record["round"] >= settings.length_retries


def _next_jobs(plan, state, requests, settings, retry_failed: bool) -> list[_Job]:
    jobs = []
    for item in plan:
        messages, sha = requests[item.id]
        last = state.get(item.id)
        if last is None:
            rnd = 0
        elif last.get("error") is not None:
            if not retry_failed:
                continue
            rnd = last["round"]
        elif not _is_final(last, settings):
            rnd = last["round"] + 1
        else:
            continue
        jobs.append(_Job(item, rnd, _request(item, messages, rnd, settings), sha))
    return jobs


def ask_teacher(
    plan: list[PlanItem],
    requests: dict[str, tuple[list[dict], str]],
    state: dict[str, dict],
    work: Path,
    settings: GenerateSettings,
    client: ChatClient | None,
) -> int:
    """Ask for every missing or truncated answer, appending each to `work`; return calls made."""
    jobs = _next_jobs(plan, state, requests, settings, retry_failed=True)
    if not jobs:
        return 0
    owned = client is None
    if owned:
        from lem.clients import make_client

        client = make_client(
            settings.teacher,
            base_url=settings.teacher_base_url,
            concurrency=settings.concurrency,
            max_retries=settings.max_retries,
            timeout=settings.timeout,
        )
    progress = Progress("generate", total=len(plan), done=len(plan) - len(jobs))
    calls = 0
    try:
        with JsonlAppender(work) as out:
            while jobs:
                for start in range(0, len(jobs), settings.batch_size):
                    batch = jobs[start : start + settings.batch_size]
                    _ask_batch(client, batch, state, out, progress, settings)
                    calls += len(batch)
                jobs = _next_jobs(plan, state, requests, settings, retry_failed=False)
    finally:
        progress.close()
        if owned:
            client.close()
    return calls


def _ask_batch(client, batch: list[_Job], state, out, progress, settings) -> None:
    lock = threading.Lock()  # API backends report from worker threads

    def on_result(index: int, result: ChatResult) -> None:
        job = batch[index]
        record = {
            "id": job.item.id,
            "seed_id": job.item.seed_id,
            "request_sha": job.request_sha,
            "round": job.round,
            "max_tokens": job.request.max_tokens,
            **_outcome(result),
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "attempts": result.attempts,
        }
        with lock:
            out.write(record)
            state[job.item.id] = record
            final = _is_final(record, settings)
            note = "" if final else f"{job.item.id} truncated, asking again"
            progress.update(1 if final else 0, tokens=result.completion_tokens, note=note)

    client.complete([j.request for j in batch], on_result=on_result)


def _outcome(result: ChatResult) -> dict:
    """Text, finish reason and error of a result; an empty answer is an answer, not a failure.

    The clients report an answer without text as an error starting "empty response";
    lem keeps it as empty text so the empty gate counts it (or, when it hit the token
    cap, the truncation gate asks again), and only real call failures are retried.
    """
    if result.ok:
        return {"text": result.text, "finish_reason": result.finish_reason, "error": None}
    error = result.error or "no text returned"
    if result.text is None and error.startswith("empty response"):
        return {"text": "", "finish_reason": result.finish_reason, "error": None, "empty": error}
    return {"text": None, "finish_reason": result.finish_reason, "error": error}


def normalise(text: str) -> str:
    """Text for duplicate detection: NFKC, lower case, letters and digits, single spaces."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def kernel_ref_patterns(axiom_names: Sequence[str]) -> dict[str, re.Pattern]:
    """The kernel-reference patterns, with the kernel's own axiom names filled in."""
    names = "|".join(re.escape(n) for n in axiom_names if n) or "(?!)"
    return {
        name: re.compile(p.replace("{names}", names), re.IGNORECASE)
        for name, p in KERNEL_REF_PATTERNS.items()
    }


def kernel_refs(text: str, patterns: dict[str, re.Pattern]) -> list[str]:
    """Names of the kernel-reference patterns that match `text`."""
    return [name for name, p in patterns.items() if p.search(text)]


def formulaic_opening(text: str) -> str | None:
    """The name of the stock opening `text` starts with, if any."""
    head = text.lstrip(" \t\n\"'*#>-").casefold()
    for name, pattern in FORMULAIC_OPENINGS.items():
        if re.match(pattern, head):
            return name
    return None


@dataclass
class _Assembly:
    train: list[dict]
    valid: list[dict]
    rejected: list[dict]
    counts: dict
    failures: list[dict]


GATES = ("failed", "truncated", "filtered", "empty", "too_short", "kernel_ref", "duplicate")


class _Gates:
    """The quality gates, applied one answer at a time, with their counters."""

    def __init__(self, settings: GenerateSettings, axiom_names: Sequence[str]):
        self.settings = settings
        self.patterns = kernel_ref_patterns(axiom_names)
        self.dropped: Counter = Counter({g: 0 for g in GATES})
        self.ref_hits: Counter = Counter()
        self.refs_kept = 0
        self.openings: Counter = Counter()
        self.seen: set[str] = set()

    def check(self, record: dict | None) -> tuple[str | None, str, str | None]:
        """(gate that drops it or None, why, the cleaned text) for an item's latest answer."""
        gate, detail, text = self._check(record)
        if gate is not None:
            self.dropped[gate] += 1
        elif (opening := formulaic_opening(text)) is not None:
            self.openings[opening] += 1
        return gate, detail, text

    def _check(self, record):
        if record is None:
            return "failed", "never answered", None
        if record.get("error") is not None:
            return "failed", record["error"], None
        text = (record.get("text") or "").strip()
        reason = record.get("finish_reason")
        if reason == "length":
            return "truncated", f"cut at {record['max_tokens']} tokens", text
        if reason not in (None, "stop"):
            return "filtered", f"finish_reason {reason}", text
        if not text and "blocked" in record.get("empty", ""):  # e.g. Gemini's prompt_feedback
            return "filtered", record["empty"], text
        if not text:
            return "empty", record.get("empty", "no text"), text
        if len(text) < self.settings.min_chars:
            return "too_short", f"{len(text)} < {self.settings.min_chars} chars", text
        hits = kernel_refs(text, self.patterns)
        self.ref_hits.update(hits)
        if hits and not self.settings.allow_kernel_refs:
            return "kernel_ref", ", ".join(hits), text
        self.refs_kept += bool(hits)
        key = sha256_json(normalise(text))
        if key in self.seen:
            return "duplicate", "same text as an earlier answer", text
        self.seen.add(key)
        return None, "", text


def assemble(
    plan: list[PlanItem], state: dict[str, dict], settings: GenerateSettings, axiom_names
) -> _Assembly:
    """Apply the gates in plan order (so which duplicate survives is stable) and split."""
    gates = _Gates(settings, axiom_names)
    kept: dict[str, list[dict]] = {"train": [], "valid": []}
    rejected, failures = [], []
    for item in plan:
        record = state.get(item.id)
        gate, detail, text = gates.check(record)
        if gate is None:
            kept[item.split].append(_example(item, text))
            continue
        if gate == "failed":
            failures.append({"id": item.id, "error": detail})
        rejected.append(
            {"id": item.id, "seed_id": item.seed_id, "gate": gate, "detail": detail, "text": text}
        )
    counts = {
        "planned": len(plan),
        "kept": len(kept["train"]) + len(kept["valid"]),
        "train": len(kept["train"]),
        "valid": len(kept["valid"]),
        "train_seeds": len({e["seed_id"] for e in kept["train"]}),
        "valid_seeds": len({e["seed_id"] for e in kept["valid"]}),
        "dropped": dict(gates.dropped),
        "length_regenerations": sum(state[i.id]["round"] for i in plan if i.id in state),
        "kernel_ref_hits": dict(sorted(gates.ref_hits.items())),
        "kernel_ref_kept": gates.refs_kept,
        "formulaic_openings": dict(sorted(gates.openings.items())),
    }
    return _Assembly(kept["train"], kept["valid"], rejected, counts, failures)


def _example(item: PlanItem, text: str) -> dict:
    example = {
        "messages": [
            {"role": "user", "content": item.prompt},
            {"role": "assistant", "content": text},
        ],
        "id": item.id,
        "seed_id": item.seed_id,
    }
    if item.voice is not None:
        example["voice"] = item.voice
    return example


def _write_outputs(out: Path, made: _Assembly) -> tuple[dict[str, Path], list[str]]:
    files, warnings = {}, []
    for name, rows in (("train", made.train), ("valid", made.valid)):
        path = out / f"{name}.jsonl"
        if rows:
            _write_jsonl(path, rows)
            files[name] = path
        else:
            # mlx-lm fails on an empty split file; without one it trains without validation.
            path.unlink(missing_ok=True)
            warnings.append(f"no {name} examples survived the gates; {path.name} not written")
    files["rejected"] = out / "rejected.jsonl"
    _write_jsonl(files["rejected"], made.rejected)
    return files, warnings


def generate(settings: GenerateSettings, client: ChatClient | None = None) -> GenerateReport:
    """Ask the teacher for every planned example, gate the answers, write the split files.

    `client` replaces the one built from `settings.teacher` (tests, or a shared client);
    a client passed in is not closed.
    """
    from lem.kernel import load_kernel
    from lem.seeds import default_seeds_path, load_seeds

    check_settings(settings)
    kernel = load_kernel(settings.kernel)
    seeds_path = Path(settings.seeds) if settings.seeds is not None else default_seeds_path("train")
    seeds = load_seeds(seeds_path)
    plan = build_plan(seeds, settings)
    requests = {}
    for item in plan:
        messages = teacher_messages(kernel, item.prompt, item.voice, settings.max_tokens)
        requests[item.id] = (messages, sha256_json([messages, settings.seed + item.sample]))
    out = Path(settings.out)
    key = work_key(settings, kernel)
    work = out / "work" / f"teacher-{key[:16]}.jsonl"
    state = load_work(work, {i: sha for i, (_, sha) in requests.items()})
    reused = len(state)
    calls = ask_teacher(plan, requests, state, work, settings, client)
    made = assemble(plan, state, settings, [a.name for a in kernel.axioms])
    files, warnings = _write_outputs(out, made)
    made.counts |= {"seeds_in_file": len(seeds), "reused": reused, "teacher_calls": calls}
    manifest = _manifest(settings, kernel, seeds_path, files, made, key, work, warnings)
    return GenerateReport(out, files, made.counts, made.failures, manifest, work, warnings)


def _manifest(settings, kernel, seeds_path, files, made, key, work, warnings) -> Path:
    out = Path(settings.out)
    recorded = to_dict(settings) | {
        "kernel": str(kernel.directory),
        "seeds": str(seeds_path),
        "teacher_base_url": public_url(settings.teacher_base_url),
    }
    extra = {
        "teacher": {"spec": settings.teacher, "base_url": public_url(settings.teacher_base_url)},
        "template_version": TEMPLATE_VERSION,
        "work_file": str(work.relative_to(out)),
        "work_key": key,
        "failures": made.failures,
        "warnings": warnings,
    }
    if settings.voices:
        extra["voices"] = VOICES
    return Manifest(
        stage="generate",
        inputs={
            "kernel.md": kernel.text_sha256,
            "axioms.json": kernel.axioms_sha256,
            "seeds": sha256_file(seeds_path),
        },
        settings=recorded,
        outputs={str(p.relative_to(out)): "" for p in files.values()},
        counts=made.counts,
        extra=extra,
    ).write(out)
