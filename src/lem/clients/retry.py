"""What the API backends share: retries with backoff, failure classification, bounded
concurrency, and scrubbing secrets (including ones a server echoes back) out of results.
"""

from __future__ import annotations

import email.utils
import random
import re
import time
from abc import abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from lem.clients.base import ChatClient, ChatRequest, ChatResult, one_line


@dataclass
class RetryPolicy:
    """Exponential backoff with jitter, or the server's `Retry-After`, capped at `max_delay`.

    `sleep` is a parameter so tests can record delays instead of waiting them out.
    """

    max_retries: int = 4
    base_delay: float = 1.0
    max_delay: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = random.random

    def delay(self, retry: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number `retry` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        backoff = min(self.max_delay, self.base_delay * 2 ** (retry - 1))
        return backoff * (0.5 + 0.5 * self.jitter())  # jitter spreads out synchronized retries


class CallFailed(Exception):
    """One API call failed: why, whether another try may succeed, and when to try."""

    def __init__(
        self,
        reason: str,
        retryable: bool,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status


def parse_retry_after(value: str | None) -> float | None:
    """A `Retry-After` header (delta seconds or an HTTP date) as seconds from now."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def status_failure(
    code: int, message: str, headers: Any = None, hint: float | None = None
) -> CallFailed:
    """Classify an HTTP error: 408, 429 and 5xx are retried; `Retry-After` on 429/503."""
    retryable = code in (408, 429) or code >= 500
    retry_after = None
    if code in (429, 503):
        if headers is not None:
            retry_after = parse_retry_after(headers.get("retry-after"))
            if retry_after is None and headers.get("retry-after-ms"):
                retry_after = parse_retry_after(headers.get("retry-after-ms"))
                retry_after = retry_after / 1000 if retry_after is not None else None
        retry_after = hint if retry_after is None else retry_after
    return CallFailed(f"HTTP {code}: {message}", retryable, retry_after, code)


def transport_errors() -> tuple[type[BaseException], ...]:
    """Network-level exception types of whichever httpx the SDKs use."""
    found: list[type[BaseException]] = []
    for name in ("httpx2", "httpx"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        found.append(module.TransportError)
    return tuple(found)


class ApiClient(ChatClient):
    """Shared policy for API backends: bounded concurrency, retries, scrubbed errors.

    Subclasses implement `_call(request) -> ChatResult`, raising `CallFailed` for a
    failed call. A request that still fails comes back as an error result; never raises.
    """

    def __init__(
        self, spec: str, api_key: str | None, concurrency: int, retry: RetryPolicy | None
    ) -> None:
        self.spec = spec
        self.concurrency = concurrency
        self.retry = retry if retry is not None else RetryPolicy()
        self._secret = api_key

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r}, concurrency={self.concurrency})"

    @abstractmethod
    def _call(self, request: ChatRequest) -> ChatResult:
        """One API call; raise `CallFailed` when it fails."""

    def complete(
        self,
        requests: Sequence[ChatRequest],
        on_result: Callable[[int, ChatResult], None] | None = None,
    ) -> list[ChatResult]:
        """Run requests `concurrency` at a time; `on_result` runs in the calling thread."""
        results: list[ChatResult | None] = [None] * len(requests)
        if not requests:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            futures = {pool.submit(self.complete_one, r): i for i, r in enumerate(requests)}
            try:
                for future in as_completed(futures):
                    i = futures[future]
                    results[i] = future.result()
                    if on_result is not None:
                        on_result(i, results[i])
            except BaseException:
                for future in futures:  # stop queued calls; running ones finish
                    future.cancel()
                raise
        return results  # type: ignore[return-value]

    def complete_one(self, request: ChatRequest) -> ChatResult:
        """One request with retries; failures come back as an error result.

        `attempts` counts every call made, retries included (what the server received).
        """
        attempts = 0
        while True:
            attempts += 1
            try:
                result = self._call(request)
            except CallFailed as failure:
                if not failure.retryable or attempts > self.retry.max_retries:
                    error = one_line(self.scrub(failure.reason))
                    return ChatResult(None, error=error, attempts=attempts, status="error")
                self.retry.sleep(self.retry.delay(attempts, failure.retry_after))
                continue
            result.attempts = attempts
            if result.error is not None:
                result.error = one_line(self.scrub(result.error))
            if result.text is not None and self._secret:
                # A server that echoes the key back must not get it stored in an answer.
                result.text = result.text.replace(self._secret, "[redacted]")
            return result

    def scrub(self, text: str) -> str:
        """Remove the key, and key-like query or header values, from an error message."""
        if self._secret:
            text = text.replace(self._secret, "[redacted]")
        text = re.sub(r"(?i)(key=)[^&\s\"']+", r"\1[redacted]", text)
        return re.sub(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}", r"\1[redacted]", text)


FILTERED = ("safety", "content_filter", "recitation", "blocklist", "prohibited_content")


def answer_result(
    text: str | None,
    finish_reason: str | None,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    why_empty: str = "",
    extra: dict | None = None,
    blocked: bool = False,
) -> ChatResult:
    """A result from an API answer. No text (or only whitespace) is status "empty", or
    "blocked" when the provider filtered it (`blocked`, or a filtering finish reason)."""
    empty = text is None or not text.strip()
    status, error = "ok", None
    if empty:
        details = [d for d in (why_empty, finish_reason and f"finish_reason={finish_reason}") if d]
        filtered = blocked or (finish_reason or "").lower() in FILTERED
        status = "blocked" if filtered else "empty"
        error = f"{status} response" + (f" ({', '.join(details)})" if details else "")
    return ChatResult(
        text=None if empty else text,
        finish_reason=finish_reason,
        error=error,
        prompt_tokens=prompt_tokens or 0,
        completion_tokens=completion_tokens or 0,
        extra=extra or {},
        status=status,
    )


def transport_failure(error: BaseException, timeout: float) -> CallFailed:
    """Timeouts and connection errors: always worth another try."""
    if "Timeout" in type(error).__name__:
        return CallFailed(f"timeout after {timeout:g}s", retryable=True)
    return CallFailed(f"connection error: {type(error).__name__}: {error}", retryable=True)
