"""Gemini through the google-genai SDK."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from typing import Any

from lem.clients.base import ChatRequest, ChatResult
from lem.clients.retry import (
    ApiClient,
    CallFailed,
    RetryPolicy,
    answer_result,
    status_failure,
    transport_errors,
    transport_failure,
)
from lem.errors import LemError

GEMINI_KEY_VARS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")


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
        self._transport = transport_errors()
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
        return answer_result(None, None, prompt, completion, why, extra, blocked=bool(blocked))
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
