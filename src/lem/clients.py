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

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class ChatRequest:
    """One conversation to complete."""

    messages: list[dict]  # [{"role": "system" | "user" | "assistant", "content": str}]
    max_tokens: int
    temperature: float = 0.0
    seed: int | None = None
    json_schema: dict | None = None  # ask for a JSON object of this shape where supported


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

    def close(self) -> None:
        """Release servers, threads or models held by the client."""
