"""One chat interface, three backends: in-process MLX, Gemini, any OpenAI-compatible server.

Teachers (`lem generate`) and judges (`lem score`) both talk through `ChatClient`.
Specs follow the provider/model convention:

    mlx/<path-or-hub-id>   in-process, batched (a bare path works too)
    gemini/<model>         google-genai; key from GEMINI_API_KEY or GOOGLE_API_KEY
    openai/<model>         the openai SDK against `base_url` (mlx_lm.server, ollama,
                           llama-server, vLLM, OpenAI); key from OPENAI_API_KEY if set

A request that fails after bounded retries comes back as a `ChatResult` with `text=None`
and an `error`; it is never replaced by a made-up answer. Secrets never appear in errors.
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from lem.errors import LemError
from lem.models import LoadedModel, load_model, strip_provider


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
    """The answer, or why there is none. `finish_reason`: "stop", "length" or the provider's."""

    text: str | None
    finish_reason: str | None = None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    attempts: int = 1
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.text is not None and self.error is None


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


PROVIDERS = ("mlx", "gemini", "openai")
GEMINI_KEY_VARS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
# Sent to OpenAI-compatible servers that need no key (mlx_lm.server, ollama, llama-server).
NO_KEY_PLACEHOLDER = "no-key-needed"
MAX_ERROR_CHARS = 300


def make_client(
    spec: str,
    base_url: str | None = None,
    concurrency: int = 8,
    max_retries: int = 4,
    timeout: float = 120.0,
) -> ChatClient:
    """Build the client a `provider/model` spec names (see the module docstring).

    `concurrency`, `max_retries` and `timeout` (seconds per call) apply to API backends.
    """
    if concurrency < 1:
        raise LemError(f"concurrency must be at least 1 (got {concurrency})")
    if max_retries < 0:
        raise LemError(f"max_retries must be 0 or more (got {max_retries})")
    provider, _, name = spec.partition("/")
    if provider in PROVIDERS and not name:
        raise LemError(f"model spec {spec!r} names no model; write {provider}/<model>")
    policy = RetryPolicy(max_retries=max_retries)
    if provider == "gemini":
        return GeminiClient(name, base_url, concurrency, policy, timeout)
    if provider == "openai":
        return OpenAIClient(name, base_url, concurrency, policy, timeout)
    if provider == "mlx" or Path(spec).expanduser().exists():
        return MlxClient(spec)
    raise LemError(
        f"model spec {spec!r}: unknown provider {provider!r}; use one of "
        "mlx/<path-or-hub-id> (or an existing local path), gemini/<model>, openai/<model>"
    )


def usage_summary(results: Sequence[ChatResult]) -> dict:
    """Counts for a cost estimate: requests, failures, attempts and tokens."""
    return {
        "requests": len(results),
        "failures": sum(not r.ok for r in results),
        "attempts": sum(r.attempts for r in results),
        "prompt_tokens": sum(r.prompt_tokens for r in results),
        "completion_tokens": sum(r.completion_tokens for r in results),
    }


# ---------------------------------------------------------------- MLX, in-process


class MlxClient(ChatClient):
    """An MLX model run in this process, every request batched through `generate_batch`.

    Requests are encoded with the model's chat template and grouped by sampling settings
    (temperature, and seed when sampling), each group one continuous batch. A seed seeds
    its whole group, so a sampled answer is reproducible for the same set of requests.
    `json_schema` is NOT enforced locally: the model is only asked, through the prompt the
    caller writes, and its answer must be validated (it is recorded in `extra`).
    """

    def __init__(self, model: str | LoadedModel, batch_size: int = 32) -> None:
        self.loaded = model if isinstance(model, LoadedModel) else load_model(strip_provider(model))
        self.spec = "mlx/" + strip_provider(str(self.loaded.spec))
        self.batch_size = batch_size
        if not self.loaded.is_chat:
            raise LemError(
                f"{self.loaded.path}: the model has no chat template, so it cannot serve as a "
                "chat teacher or judge; use an instruction-tuned model"
            )

    def complete(
        self,
        requests: Sequence[ChatRequest],
        on_result: Callable[[int, ChatResult], None] | None = None,
    ) -> list[ChatResult]:
        """Complete every request in batches; `on_result` fires as each answer finishes."""
        results: list[ChatResult | None] = [None] * len(requests)

        def finish(i: int, result: ChatResult) -> None:
            results[i] = result
            if on_result is not None:
                on_result(i, result)

        groups: dict[tuple, list[tuple[int, list[int]]]] = {}
        for i, request in enumerate(requests):
            ids = self._encode(request)
            if isinstance(ids, ChatResult):
                finish(i, ids)
                continue
            seed = request.seed if request.temperature > 0 else None
            key = (request.temperature, seed, request.repetition_penalty)
            groups.setdefault(key, []).append((i, ids))
        for (temperature, seed, penalty), items in groups.items():
            self._run_group(requests, items, temperature, seed, penalty, finish)
        return results  # type: ignore[return-value]

    def _encode(self, request: ChatRequest) -> list[int] | ChatResult:
        from jinja2 import TemplateError

        from lem.generation import encode_chat

        try:
            return encode_chat(self.loaded, request.messages)
        except (TemplateError, ValueError) as e:  # e.g. a template that rejects system turns
            return ChatResult(text=None, error=_one_line(f"chat template failed: {e}"))

    def _run_group(self, requests, items, temperature, seed, penalty, finish) -> None:
        from lem.generation import Generation, generate_batch

        def done(j: int, gen: Generation) -> None:
            i = items[j][0]
            extra = {"seconds": round(gen.seconds, 3)}
            if requests[i].json_schema is not None:
                extra["json_schema"] = "not enforced (local model)"
            empty = not gen.text.strip()
            finish(
                i,
                ChatResult(
                    text=None if empty else gen.text,
                    finish_reason=gen.finish_reason,
                    error="empty response" if empty else None,
                    prompt_tokens=gen.prompt_tokens,
                    completion_tokens=gen.tokens,
                    extra=extra,
                ),
            )

        generate_batch(
            self.loaded,
            [ids for _, ids in items],
            max_tokens=[requests[i].max_tokens for i, _ in items],
            temperature=temperature,
            seed=seed,
            batch_size=self.batch_size,
            on_result=done,
            repetition_penalty=penalty,
        )


# ---------------------------------------------------------------- API retry policy


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


def _one_line(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


def _transport_errors() -> tuple[type[BaseException], ...]:
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
        """One request with retries; failures come back as an error result."""
        attempts = 0
        while True:
            attempts += 1
            try:
                result = self._call(request)
            except CallFailed as failure:
                if not failure.retryable or attempts > self.retry.max_retries:
                    error = self._scrub(failure.reason)
                    return ChatResult(text=None, error=error, attempts=attempts)
                self.retry.sleep(self.retry.delay(attempts, failure.retry_after))
                continue
            result.attempts = attempts
            if result.error is not None:
                result.error = self._scrub(result.error)
            return result

    def _scrub(self, text: str) -> str:
        """Remove the key (and key-like query or header values) from an error message."""
        if self._secret:
            text = text.replace(self._secret, "[redacted]")
        text = re.sub(r"(?i)(key=)[^&\s\"']+", r"\1[redacted]", text)
        text = re.sub(r"(?i)(bearer\s+)\S+", r"\1[redacted]", text)
        return _one_line(text)


def answer_result(
    text: str | None,
    finish_reason: str | None,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    why_empty: str = "",
    extra: dict | None = None,
) -> ChatResult:
    """A result from an API answer; no text (or only whitespace) is an "empty response"."""
    empty = text is None or not text.strip()
    error = None
    if empty:
        details = [d for d in (why_empty, finish_reason and f"finish_reason={finish_reason}") if d]
        error = "empty response" + (f" ({', '.join(details)})" if details else "")
    return ChatResult(
        text=None if empty else text,
        finish_reason=finish_reason,
        error=error,
        prompt_tokens=prompt_tokens or 0,
        completion_tokens=completion_tokens or 0,
        extra=extra or {},
    )


# ---------------------------------------------------------------- Gemini


class GeminiClient(ApiClient):
    """Gemini through google-genai. System turns become `system_instruction`; a JSON schema
    becomes `response_mime_type="application/json"` + `response_schema`.

    The SDK's own retries are switched off (`HttpRetryOptions(attempts=1)`; its sync client
    does not retry by default, but an explicit setting keeps it that way), so lem's policy
    is the only one.
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        concurrency: int = 8,
        retry: RetryPolicy | None = None,
        timeout: float = 120.0,
        api_key: str | None = None,
    ) -> None:
        key = api_key or next((os.environ[v] for v in GEMINI_KEY_VARS if os.environ.get(v)), None)
        if not key:
            raise LemError(
                f"gemini/{model} needs an API key: set GEMINI_API_KEY (or GOOGLE_API_KEY)"
            )
        super().__init__(f"gemini/{model}", key, concurrency, retry)
        from google import genai
        from google.genai import types

        self.model = model
        self._client = genai.Client(
            api_key=key,
            vertexai=False,
            http_options=types.HttpOptions(
                base_url=base_url,
                timeout=int(timeout * 1000),  # the SDK takes milliseconds
                retry_options=types.HttpRetryOptions(attempts=1),
            ),
        )
        self._transport = _transport_errors()
        self._timeout = timeout

    def close(self) -> None:
        self._client.close()

    def _call(self, request: ChatRequest) -> ChatResult:
        from google.genai import errors
        from pydantic import ValidationError

        contents, system = gemini_contents(request.messages)
        try:
            response = self._client.models.generate_content(
                model=self.model, contents=contents, config=self._config(request, system)
            )
        except errors.APIError as e:
            headers = getattr(e.response, "headers", None)
            hint = gemini_retry_delay(e.details)
            raise status_failure(e.code, f"{e.status or ''} {e.message or ''}", headers, hint)
        except (errors.UnknownApiResponseError, json.JSONDecodeError, ValidationError) as e:
            raise CallFailed(f"unreadable response: {type(e).__name__}: {e}", retryable=False)
        except self._transport as e:
            raise transport_failure(e, self._timeout)
        return gemini_result(response)

    def _config(self, request: ChatRequest, system: str | None) -> Any:
        from google.genai import types

        schema = request.json_schema
        return types.GenerateContentConfig(
            system_instruction=system,
            temperature=request.temperature,
            max_output_tokens=request.max_tokens,
            seed=request.seed,
            response_mime_type="application/json" if schema is not None else None,
            response_schema=schema,
        )


def gemini_contents(messages: Sequence[dict]) -> tuple[list, str | None]:
    """Chat messages -> Gemini contents (assistant -> "model") and the system text."""
    from google.genai import types

    roles = {"user": "user", "assistant": "model"}
    system = [m["content"] for m in messages if m["role"] == "system"]
    contents = []
    for m in messages:
        if m["role"] == "system":
            continue
        if m["role"] not in roles:
            raise ValueError(f"unknown chat role {m['role']!r}")
        contents.append(types.Content(role=roles[m["role"]], parts=[types.Part(text=m["content"])]))
    return contents, "\n\n".join(system) if system else None


def gemini_result(response: Any) -> ChatResult:
    """A generateContent response -> ChatResult (thought parts are left out of the text)."""
    usage = response.usage_metadata
    prompt = usage.prompt_token_count if usage else None
    thoughts = (usage.thoughts_token_count or 0) if usage else 0
    completion = ((usage.candidates_token_count or 0) + thoughts) if usage else None
    extra = {"thoughts_tokens": thoughts} if thoughts else {}
    if not response.candidates:
        feedback = response.prompt_feedback
        blocked = feedback.block_reason if feedback else None
        why = f"blocked: {getattr(blocked, 'value', blocked)}" if blocked else "no candidates"
        return answer_result(None, None, prompt, completion, why, extra)
    candidate = response.candidates[0]
    parts = candidate.content.parts if candidate.content and candidate.content.parts else []
    text = "".join(p.text for p in parts if p.text and not p.thought)
    finish = gemini_finish(candidate.finish_reason)
    return answer_result(text, finish, prompt, completion, "", extra)


def gemini_finish(reason: Any) -> str | None:
    """STOP -> "stop", MAX_TOKENS -> "length", others lowercased ("safety", ...)."""
    if reason is None:
        return None
    name = str(getattr(reason, "value", reason))
    return {"STOP": "stop", "MAX_TOKENS": "length"}.get(name, name.lower())


def gemini_retry_delay(details: Any) -> float | None:
    """The `RetryInfo.retryDelay` ("30s") a Gemini 429 body may carry, in seconds."""
    error = details.get("error", details) if isinstance(details, dict) else None
    for item in (error or {}).get("details", []) if isinstance(error, dict) else []:
        delay = item.get("retryDelay") if isinstance(item, dict) else None
        match = re.fullmatch(r"(\d+(?:\.\d+)?)s", str(delay or ""))
        if match:
            return float(match.group(1))
    return None


def transport_failure(error: BaseException, timeout: float) -> CallFailed:
    """Timeouts and connection errors: always worth another try."""
    if "Timeout" in type(error).__name__:
        return CallFailed(f"timeout after {timeout:g}s", retryable=True)
    return CallFailed(f"connection error: {type(error).__name__}: {error}", retryable=True)


# ---------------------------------------------------------------- OpenAI-compatible


class OpenAIClient(ApiClient):
    """Any OpenAI-compatible chat server through the `openai` SDK (its retries off).

    A JSON schema is sent as `response_format` of type `json_schema`; a server that
    rejects that with a 400 but accepts `json_object` gets `json_object` from then on, and
    each result records which format was used in `extra["response_format"]`. The token
    cap goes as `max_tokens` (what local servers read), or `max_completion_tokens` once
    a server asks for that.
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        concurrency: int = 8,
        retry: RetryPolicy | None = None,
        timeout: float = 120.0,
        api_key: str | None = None,
    ) -> None:
        base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        if not base_url:
            raise LemError(
                f"openai/{model} needs a server URL: pass --judge-base-url/--teacher-base-url "
                "(e.g. http://127.0.0.1:8080/v1) or set OPENAI_BASE_URL"
            )
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key and "api.openai.com" in base_url:
            raise LemError(f"openai/{model} at {base_url} needs an API key: set OPENAI_API_KEY")
        super().__init__(f"openai/{model}", key, concurrency, retry)
        import openai

        self.model = model
        self.base_url = base_url
        self._client = openai.OpenAI(
            api_key=key or NO_KEY_PLACEHOLDER, base_url=base_url, max_retries=0, timeout=timeout
        )
        self._timeout = timeout
        self._json_schema_rejected: str | None = None  # the server's reason, once rejected
        self._token_param = "max_tokens"  # what mlx_lm.server, ollama, llama-server, vLLM read

    def close(self) -> None:
        self._client.close()

    def _call(self, request: ChatRequest) -> ChatResult:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": list(request.messages),
            self._token_param: request.max_tokens,
            "temperature": request.temperature,
        }
        if request.seed is not None:
            kwargs["seed"] = request.seed
        extra: dict = {}
        if request.json_schema is not None:
            kwargs["response_format"], extra = self._response_format(request.json_schema)
        try:
            response = self._create(kwargs)
        except CallFailed as failure:
            if failure.status != 400:
                raise
            response, extra = self._after_400(failure, kwargs, extra)
        try:
            return openai_result(response, extra)
        except (AttributeError, TypeError, IndexError) as e:  # the SDK does not validate shapes
            raise CallFailed(f"unreadable response: {type(e).__name__}: {e}", retryable=False)

    def _after_400(self, failure: CallFailed, kwargs: dict, extra: dict) -> tuple[Any, dict]:
        """Adapt once to a server that rejects json_schema or `max_tokens`, or re-raise.

        The adaptation is remembered only if the adapted call succeeds, so a 400 for
        another reason (a prompt too long) changes nothing and reports the first error.
        """
        if "max_completion_tokens" in failure.reason and "max_tokens" in kwargs:
            kwargs["max_completion_tokens"] = kwargs.pop("max_tokens")  # OpenAI reasoning models
            response = self._create(kwargs)
            self._token_param = "max_completion_tokens"
            return response, extra
        if extra.get("response_format") != "json_schema":
            raise failure
        kwargs["response_format"] = {"type": "json_object"}
        try:
            response = self._create(kwargs)
        except CallFailed:
            raise failure from None
        self._json_schema_rejected = failure.reason
        return response, self._response_format({})[1]

    def _create(self, kwargs: dict) -> Any:
        import openai

        try:
            return self._client.chat.completions.create(**kwargs)
        except openai.OpenAIError as e:
            raise self._failure(e)
        except json.JSONDecodeError as e:
            raise CallFailed(f"unreadable response: {e}", retryable=False)

    def _response_format(self, schema: dict) -> tuple[dict, dict]:
        if self._json_schema_rejected is not None:
            note = {
                "response_format": "json_object",
                "json_schema_rejected": self._json_schema_rejected,
            }
            return {"type": "json_object"}, note
        fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
        return fmt, {"response_format": "json_schema"}

    def _failure(self, error: BaseException) -> CallFailed:
        import openai

        if isinstance(error, openai.APIStatusError):
            # The SDK prefixes "Error code: 400 - "; the status is already in our reason.
            message = re.sub(r"^Error code: \d+( - )?", "", str(error.message))
            message = message or error.response.text  # a body that is not JSON
            return status_failure(error.status_code, message, error.response.headers)
        if isinstance(error, openai.APITimeoutError):
            return CallFailed(f"timeout after {self._timeout:g}s", retryable=True)
        if isinstance(error, openai.APIConnectionError):
            cause = error.__cause__ or error
            return CallFailed(f"connection error: {type(cause).__name__}: {cause}", True)
        return CallFailed(f"{type(error).__name__}: {error}", retryable=False)


def openai_result(response: Any, extra: dict) -> ChatResult:
    """A chat.completions response -> ChatResult."""
    usage = response.usage
    prompt = usage.prompt_tokens if usage else None
    completion = usage.completion_tokens if usage else None
    if not response.choices:
        return answer_result(None, None, prompt, completion, "no choices", extra)
    choice = response.choices[0]
    message = choice.message
    refusal = getattr(message, "refusal", None) if message else None
    why = f"refusal: {refusal}" if refusal else ""
    text = message.content if message else None
    return answer_result(text, choice.finish_reason, prompt, completion, why, extra)


def public_url(url: str | None) -> str | None:
    """A base URL fit for a manifest: no user info, query or fragment (where keys could hide)."""
    if url is None:
        return None
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
