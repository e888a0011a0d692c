"""LLM judging: rubric prompts through any ChatClient, strict verdicts, a cache, usage.

`Judge.judge(rubric, items)` returns one `Verdict` per item, in order. A verdict is either
`ok` with every metric's value, or `unscored` with its reason: a judge error after the
client's own retries (HTTP errors, 429 with Retry-After), or replies that were not a valid
verdict after `reasks` follow-up turns. Never a default number.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lem.clients import ChatClient, ChatRequest, ChatResult
from lem.judge.cache import VerdictCache, cache_key
from lem.judge.rubrics import Rubric
from lem.judge.verdict import (
    MAX_TOKENS,
    VerdictError,
    build_request,
    new_nonce,
    parse_verdict,
    reask_request,
    template_version,
)
from lem.models import ModelRef
from lem.progress import Progress

REASKS = 2  # follow-up turns after an unusable reply (HTTP retries are the client's)


@dataclass
class JudgeItem:
    """What the judge sees of one result: the question, labelled references, the response."""

    question: str
    references: dict[str, Any]
    response: str

    def content(self) -> dict:
        return {"question": self.question, "references": self.references, "response": self.response}


@dataclass
class Verdict:
    """One item's verdict: `values` when `status` is "ok", else None with a `reason`."""

    status: str  # "ok" | "unscored"
    values: dict[str, Any] | None = None
    reason: str | None = None
    raw: str | None = None  # the judge's last reply, verbatim
    attempts: int = 0  # judge turns used (0 when cached)
    cached: bool = False


@dataclass
class Usage:
    """Judge calls and tokens of one or more `judge()` runs (cached verdicts cost nothing).

    `calls` counts what the server received, HTTP retries included; `turns` the judge
    turns lem asked for (a re-ask after an unusable reply is a turn).
    """

    calls: int = 0
    turns: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, result: ChatResult) -> None:
        with self._lock:
            self.calls += result.attempts
            self.turns += 1
            self.prompt_tokens += result.prompt_tokens
            self.completion_tokens += result.completion_tokens


@dataclass
class _Pending:
    index: int
    key: str
    nonce: str
    first: ChatRequest
    request: ChatRequest
    turns: int = 0


class Judge:
    """Judges items with one client; the model's identity keys the verdict cache.

    The identity is the judge model's content hash for local judges (an `mlx/` directory
    retrained in place is a new judge; a `serve:` judge on a random port is the same one)
    and its provider, name and server for API judges.
    """

    def __init__(
        self,
        client: ChatClient,
        ref: ModelRef,
        cache: VerdictCache | None = None,
        reasks: int = REASKS,
        max_tokens: int = MAX_TOKENS,
    ):
        if reasks < 0:
            raise ValueError("reasks must be >= 0")
        self.client = client
        self.ref = ref
        self.spec = ref.spec
        self.identity = ref.identity()
        self.cache = cache
        self.reasks = reasks
        self.max_tokens = max_tokens
        self.usage = Usage()

    def judge(
        self, rubric: Rubric, items: Sequence[JudgeItem], label: str = "judge"
    ) -> list[Verdict]:
        """One verdict per item, in order: from the cache, or asked (with re-asks) in batches."""
        verdicts: list[Verdict | None] = [None] * len(items)
        pending = []
        for i, item in enumerate(items):
            key = cache_key(self.identity, rubric.version, template_version(), item.content())
            hit = self.cache.get(key) if self.cache is not None else None
            if hit is not None:
                verdicts[i] = Verdict("ok", hit.values, raw=hit.raw, cached=True)
                self.usage.cached += 1
                continue
            nonce = new_nonce()
            request = build_request(
                rubric, item.question, item.references, item.response, nonce, self.max_tokens
            )
            pending.append(_Pending(i, key, nonce, request, request))
        progress = Progress(label, len(items), done=len(items) - len(pending))
        lock = threading.Lock()
        while pending:
            retry: list[_Pending] = []

            def on_result(j: int, result: ChatResult, batch=pending, retry=retry) -> None:
                verdict = self._settle(rubric, batch[j], result, retry, lock)
                if verdict is not None:
                    with lock:
                        verdicts[batch[j].index] = verdict
                        progress.update(1, note=verdict.status if verdict.status != "ok" else "")

            self.client.complete([p.request for p in pending], on_result=on_result)
            pending = retry
        progress.close()
        missing = [i for i, v in enumerate(verdicts) if v is None]
        if missing:  # a client that skipped on_result: a lem bug, not bad input
            raise RuntimeError(f"judge client returned no result for items {missing[:5]}")
        return verdicts  # type: ignore[return-value]

    def _settle(
        self, rubric: Rubric, p: _Pending, result: ChatResult, retry: list, lock: threading.Lock
    ) -> Verdict | None:
        """A final verdict for this reply, or None after queueing a re-ask."""
        self.usage.add(result)
        p.turns += 1
        if not result.ok:
            reason = f"judge {result.status}: {result.error or 'no reply'}"
            return Verdict("unscored", reason=reason, raw=result.text, attempts=p.turns)
        try:
            values = parse_verdict(result.text, rubric, p.nonce)
        except VerdictError as e:
            reason = str(e)
            if result.finish_reason == "length":
                reason += " (reply cut at max_tokens)"
            if p.turns <= self.reasks:
                p.request = reask_request(p.request, result.text, reason)
                with lock:
                    retry.append(p)
                return None
            return Verdict(
                "unscored",
                reason=f"no valid verdict in {p.turns} replies; last: {reason}",
                raw=result.text,
                attempts=p.turns,
            )
        if self.cache is not None:
            usage = (result.prompt_tokens, result.completion_tokens)
            self.cache.put(p.key, self.spec, rubric.version, values, result.text, usage)
        return Verdict("ok", values, raw=result.text, attempts=p.turns)
