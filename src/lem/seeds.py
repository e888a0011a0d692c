"""Seed prompts: JSONL, one prompt a line, validated, plus an n-gram near-duplicate check.

Each line is an object with `id`, `domain` and `prompt` (non-empty strings) and, optionally,
`tension` (a list of the axiom ids that pull against each other in this prompt), `voice`
(who is asking, in a few words), `kind` (one of KINDS: what the right answer looks like),
`expect` (one of EXPECT: the behaviour a good answer shows, for evaluation prompts) and,
for a multi-turn seed, `history` (the earlier turns: user first, alternating with
assistant, ending with an assistant turn; `prompt` is the last user message; an
assistant turn marked `"train": false` is context only, never trained: a deliberately
wrong answer the user then corrects) and
`pattern` (one of PATTERNS). Unknown fields are rejected, so that a misspelt optional
field ("tensions") is reported instead of silently ignored.

Training seeds and evaluation prompts must be disjoint: `near_duplicates` finds pairs whose
word n-grams overlap, for checking the shipped splits and, later, generated data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from lem.errors import LemError
from lem.store import iter_jsonl, sha256_file

SPLITS = ("train", "eval")
REQUIRED = ("id", "domain", "prompt")
OPTIONAL = ("tension", "voice", "kind", "expect", "history", "pattern")
# What the right answer looks like, for checking that a seed set has the intended spread.
KINDS = ("help", "overrefusal", "dilemma", "decline", "manipulation", "crisis")
# The behaviour a good answer shows, scored without a judge by the refusal classifier:
# `answer` (a refusal is over-refusal), `decline`, `partial` (help, but decline one part),
# `crisis` (engage, give no means, point to immediate help).
EXPECT = ("answer", "decline", "partial", "crisis")
# How a multi-turn conversation tests judgement across turns.
PATTERNS = ("escalation", "fragmented", "pushback", "followup")


@dataclass
class Seed:
    """One seed prompt."""

    id: str
    domain: str
    prompt: str
    tension: list[str] | None = None
    voice: str | None = None
    kind: str | None = None
    expect: str | None = None
    history: list[dict] | None = None
    pattern: str | None = None

    def messages(self) -> list[dict]:
        """The conversation up to the turn to answer: earlier turns, then the prompt."""
        return [*(self.history or []), {"role": "user", "content": self.prompt}]

    def text(self) -> str:
        """Every user turn, for near-duplicate and contamination checks."""
        turns = [m["content"] for m in self.history or [] if m["role"] == "user"]
        return "\n".join([*turns, self.prompt])


def default_seeds_path(split: str) -> Path:
    """The shipped seeds for `split` ("train" or "eval")."""
    if split not in SPLITS:
        raise LemError(f"unknown seeds split {split!r}; use one of: {', '.join(SPLITS)}")
    return Path(str(resources.files("lem").joinpath("data", "seeds", f"{split}.jsonl")))


def iter_seeds(path: str | Path) -> Iterator[tuple[int, Seed]]:
    """Yield (line number, Seed) for each line, with one-line errors naming file:line."""
    for number, obj in iter_jsonl(path):
        yield number, _parse(f"{path}:{number}", obj)


def load_seeds(path: str | Path) -> list[Seed]:
    """Read and validate a seeds file; ids must be unique (a duplicate names both lines)."""
    seeds: list[Seed] = []
    first_line: dict[str, int] = {}
    for number, seed in iter_seeds(path):
        if seed.id in first_line:
            raise LemError(
                f"{path}:{number}: duplicate id {seed.id!r} (first at line {first_line[seed.id]})"
            )
        first_line[seed.id] = number
        seeds.append(seed)
    if not seeds:
        raise LemError(f"{path}: no seeds; write one JSON object a line")
    return seeds


def check_seeds(path: str | Path, axiom_ids: Iterable[str] | None = None) -> dict[str, Any]:
    """Validate a seeds file and describe it; with `axiom_ids`, tensions must name them."""
    known = set(axiom_ids) if axiom_ids is not None else None
    seeds = load_seeds(path)
    if known is not None:
        for number, seed in iter_seeds(path):
            unknown = [t for t in seed.tension or [] if t not in known]
            if unknown:
                raise LemError(
                    f"{path}:{number}: tension names unknown axiom(s) "
                    f"{', '.join(unknown)}; known: {', '.join(sorted(known))}"
                )
    return {
        "path": str(path),
        "seeds": len(seeds),
        "sha256": sha256_file(path),
        "domains": _count(s.domain for s in seeds),
        "kinds": _count(s.kind or "(none)" for s in seeds),
        "multi_turn": sum(s.history is not None for s in seeds),
    }


def _count(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))


def _parse(where: str, obj: dict[str, Any]) -> Seed:
    unknown = [k for k in obj if k not in REQUIRED + OPTIONAL]
    if unknown:
        raise LemError(
            f"{where}: unknown field(s) {', '.join(map(repr, unknown))} "
            f"(allowed: {', '.join(REQUIRED + OPTIONAL)})"
        )
    for key in REQUIRED:
        if key not in obj:
            raise LemError(f"{where}: missing field {key!r}")
        _text(where, key, obj[key])
    for key in ("voice", "kind", "expect", "pattern"):
        if obj.get(key) is not None:
            _text(where, key, obj[key])
    for key, allowed in (("kind", KINDS), ("expect", EXPECT), ("pattern", PATTERNS)):
        if obj.get(key) is not None and obj[key] not in allowed:
            raise LemError(f"{where}: {key} {obj[key]!r} is not one of: {', '.join(allowed)}")
    if obj.get("history") is not None:
        _check_history(where, obj["history"])
    tension = obj.get("tension")
    if tension is not None and (
        not isinstance(tension, list)
        or not tension
        or not all(isinstance(t, str) and t.strip() for t in tension)
    ):
        raise LemError(
            f"{where}: 'tension' must be a non-empty list of axiom ids, "
            f'e.g. ["sovereignty", "privacy"]'
        )
    return Seed(**obj)


def _check_history(where: str, history: Any) -> None:
    """Earlier turns: user first, alternating, ending with the assistant (1 to 3 exchanges)."""
    if not isinstance(history, list) or not history or len(history) % 2:
        raise LemError(
            f"{where}: 'history' must be a list of user/assistant turns ending with an "
            "assistant turn (the prompt is the next user turn)"
        )
    if len(history) > 6:
        raise LemError(f"{where}: 'history' has {len(history) // 2} exchanges; at most 3")
    for i, turn in enumerate(history):
        role = "user" if i % 2 == 0 else "assistant"
        allowed = {"role", "content"} | ({"train"} if role == "assistant" else set())
        if not isinstance(turn, dict) or not {"role", "content"} <= set(turn) <= allowed:
            extra = ' (and optionally "train": false)' if role == "assistant" else ""
            raise LemError(f'{where}: history[{i}] must be {{"role": ..., "content": ...}}{extra}')
        if turn["role"] != role:
            raise LemError(f"{where}: history[{i}] should be the {role}'s turn")
        if not isinstance(turn.get("train", True), bool):
            raise LemError(f"{where}: history[{i}].train must be true or false")
        _text(where, f"history[{i}].content", turn["content"])


def _text(where: str, key: str, value: Any) -> None:
    if not isinstance(value, str):
        got = "null" if value is None else type(value).__name__
        raise LemError(f"{where}: {key!r} must be a string, got {got}")
    if not value.strip():
        raise LemError(f"{where}: {key!r} is empty")


_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# Grams made only of these carry no topic ("how do i", "should i"): they are dropped, so two
# short prompts do not look alike just for both starting "How do I".
_FUNCTION_WORDS = frozenset(
    "a an the i i'm i've you he she it it's we they me my your his her its our their to of in "
    "on at for with from by and or but if so is are was were be been am do does did don't how "
    "what why when where which who can could should would will may might must not no this that "
    "these those there here as about into than then just any some all".split()
)


def word_ngrams(text: str, n: int = 2) -> set[tuple[str, ...]]:
    """Lower-cased word n-grams, without those made only of function words.

    A text too short (or too plain) to yield any is one gram of all its words.
    """
    words = _WORD.findall(text.lower())
    grams = {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}
    grams = {g for g in grams if not all(w in _FUNCTION_WORDS for w in g)}
    return grams or ({tuple(words)} if words else set())


def ngram_overlap(a: str, b: str, n: int = 2) -> float:
    """Share of the shorter text's word n-grams that also occur in the other (0..1).

    Containment in the shorter text, not Jaccard, so a short prompt copied into a longer
    one (or padded with a sentence) still scores high.
    """
    return _containment(word_ngrams(a, n), word_ngrams(b, n))


def _containment(a: set, b: set) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


# Measured on the shipped seeds (340 prompts, every pair): unrelated prompts reach at most
# 0.31, while a prompt with every sixth word replaced and a sentence added scores 0.57 or
# more in nine cases out of ten (tests/test_seeds.py checks both sides).
NEAR_DUPLICATE = 0.4


def near_duplicates(
    left: Iterable[tuple[str, str]],
    right: Iterable[tuple[str, str]],
    n: int = 2,
    threshold: float = NEAR_DUPLICATE,
) -> list[tuple[str, str, float]]:
    """Pairs (left id, right id, overlap) of texts whose n-gram overlap is >= threshold.

    `left` and `right` are (id, text) pairs; results are sorted, highest overlap first.
    A full rewording shares few n-grams and is not caught: this finds copies and edits.
    """
    right_grams = [(rid, word_ngrams(text, n)) for rid, text in right]
    found = []
    for lid, text in left:
        grams = word_ngrams(text, n)
        for rid, other in right_grams:
            score = _containment(grams, other)
            if score >= threshold:
                found.append((lid, rid, score))
    return sorted(found, key=lambda f: (-f[2], f[0], f[1]))
