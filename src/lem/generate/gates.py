"""The quality gates every teacher's answers pass before they become training data.

In plan order (so which duplicate survives is stable): failed calls, answers cut off
by the token cap (never kept truncated), provider-filtered, empty, too short, answers
that refer to the kernel the student never sees (unless allowed), exact duplicates, and
answers opening with the same words as `max_same_opening` earlier ones (a template a
student would learn to copy). Stock openings ("As an AI", "Certainly!") are counted.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

from lem.store import sha256_json

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


OPENING_WORDS = 5  # answers sharing their first five words share an opening


def opening(text: str) -> str:
    """An answer's first OPENING_WORDS words, normalised (for the shared-opening gate)."""
    return " ".join(normalise(text).split()[:OPENING_WORDS])


GATES = (
    "failed",
    "truncated",
    "filtered",
    "empty",
    "too_short",
    "kernel_ref",
    "duplicate",
    "shared_opening",
)


class Gates:
    """The quality gates, applied one answer at a time, with their counters."""

    def __init__(self, settings, axiom_names: Sequence[str]):
        self.settings = settings
        self.patterns = kernel_ref_patterns(axiom_names)
        self.dropped: Counter = Counter({g: 0 for g in GATES})
        self.ref_hits: Counter = Counter()
        self.refs_kept = 0
        self.openings: Counter = Counter()
        self.seen: set[str] = set()
        self.opened: Counter = Counter()

    def check(self, record: dict | None) -> tuple[str | None, str, str | None]:
        """(gate that drops it or None, why, the cleaned text) for an item's latest answer."""
        gate, detail, text = self._check(record)
        if gate is not None:
            self.dropped[gate] += 1
        elif (stock := formulaic_opening(text)) is not None:
            self.openings[stock] += 1
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
        if record.get("status") == "blocked":
            return "filtered", record.get("empty") or "blocked by the provider", text
        if reason not in (None, "stop"):
            return "filtered", f"finish_reason {reason}", text
        if not text:
            return "empty", record.get("empty", "no text"), text
        if len(text) < self.settings.min_chars:
            return "too_short", f"{len(text)} < {self.settings.min_chars} chars", text
        hits = kernel_refs(text, self.patterns)
        self.ref_hits.update(hits)
        if hits and not self.settings.allow_kernel_refs:
            return "kernel_ref", ", ".join(hits), text
        key = sha256_json(normalise(text))
        if key in self.seen:
            return "duplicate", "same text as an earlier answer", text
        start = opening(text)
        if self.opened[start] >= self.settings.max_same_opening:
            return "shared_opening", f"opens like {self.opened[start]} earlier answers", text
        self.refs_kept += bool(hits)
        self.seen.add(key)
        self.opened[start] += 1
        return None, "", text
