"""Any OpenAI-compatible chat server through the openai SDK."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from lem.clients.base import ChatRequest, ChatResult
from lem.clients.retry import (
    ApiClient,
    CallFailed,
    RetryPolicy,
    answer_result,
    status_failure,
)
from lem.errors import LemError

# Sent to OpenAI-compatible servers that need no key (mlx_lm.server, ollama, llama-server).
NO_KEY_PLACEHOLDER = "no-key-needed"


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
    return answer_result(
        text, choice.finish_reason, prompt, completion, why, extra, blocked=bool(refusal)
    )


class ServedClient(OpenAIClient):
    """A local model served by `mlx_lm server` for the life of the client (spec `serve:`).

    The server's URL holds a random port, so the client's identity is the served model's
    (its files' hash), never the URL: verdicts cached by one run are found by the next.
    """

    def __init__(self, model_dir: Path, concurrency: int, retry: RetryPolicy, timeout: float):
        from lem.serve import mlx_server

        self._server = mlx_server(model_dir)
        url = self._server.__enter__()
        try:
            super().__init__("default_model", url, concurrency, retry, timeout)
        except BaseException:
            self._server.__exit__(None, None, None)
            raise

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._server.__exit__(None, None, None)
