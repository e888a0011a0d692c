"""The chat interface every backend implements: a request, a result with a status, a client.

Teachers (`lem generate`) and judges (`lem score`) both talk through `ChatClient`. A
result's `status` says what came back: `ok` (text), `empty` (an answer with no text),
`blocked` (the provider filtered the prompt or the answer) or `error` (the call failed
after bounded retries). Only `ok` carries text; nothing is ever made up in its place.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from lem.config import setting

STATUSES = ("ok", "empty", "blocked", "error")
MAX_ERROR_CHARS = 300


@dataclass
class ApiOptions:
    """How lem talks to API teachers and judges; the generate and score settings extend it."""

    concurrency: int = setting(8, "API teachers/judges: requests in flight", min=1)
    max_retries: int = setting(4, "API teachers/judges: retries of a failed call", min=0)
    timeout: float = setting(120.0, "API teachers/judges: seconds per call", gt=0)


@dataclass
class ChatRequest:
    """One conversation to complete."""

    messages: list[dict]  # [{"role": "system" | "user" | "assistant", "content": str}]
    max_tokens: int
    temperature: float = 0.0
    seed: int | None = None
    json_schema: dict | None = None  # ask for a JSON object of this shape where supported
    repetition_penalty: float | None = None  # in-process MLX models only (mlx-lm's penalty)


@dataclass
class ChatResult:
    """The answer, or why there is none. `finish_reason`: "stop", "length" or the provider's.

    `status` is one of STATUSES; `error` says why when it is not "ok". `extra` holds what
    the backend reports about how it answered (response format used, schema enforced or
    not, thought tokens); stages store it beside the answer.
    """

    text: str | None
    finish_reason: str | None = None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    attempts: int = 1
    extra: dict = field(default_factory=dict)
    status: str = "ok"

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}")
        if self.status == "ok" and (self.text is None or self.error is not None):
            self.status = "error"  # a result without text is never ok

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class ChatClient(ABC):
    """Completes many requests; backends choose how (a batch, or concurrent API calls)."""

    spec: str

    @abstractmethod
    def complete(
        self,
        requests: Sequence[ChatRequest],
        on_result: Callable[[int, ChatResult], None] | None = None,
    ) -> list[ChatResult]:
        """Complete every request; call `on_result(index, result)` as each finishes."""

    def close(self) -> None:  # noqa: B027 (optional hook; most backends hold nothing)
        """Release servers, threads or models held by the client."""

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def usage_summary(results: Sequence[ChatResult]) -> dict:
    """Counts for a cost estimate: requests, failures, attempts and tokens."""
    return {
        "requests": len(results),
        "failures": sum(not r.ok for r in results),
        "attempts": sum(r.attempts for r in results),
        "prompt_tokens": sum(r.prompt_tokens for r in results),
        "completion_tokens": sum(r.completion_tokens for r in results),
    }


def one_line(text: str) -> str:
    """An error message folded to one line of at most MAX_ERROR_CHARS."""
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."
