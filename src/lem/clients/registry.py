"""Providers, the one way to make a client from a model reference, and prices.

Each provider registers a factory under its name (`@provider("gemini")`); `make_client`
looks it up for a `ModelRef`. Only this module imports the provider modules, so the base
modules never import upward. `public_url` makes a server URL fit for a manifest.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from lem.clients.base import ApiOptions, ChatClient
from lem.errors import LemError
from lem.models import ModelRef, parse_model_ref

Factory = Callable[[ModelRef, ApiOptions], ChatClient]
PROVIDERS: dict[str, Factory] = {}


def provider(name: str) -> Callable[[Factory], Factory]:
    """Register a client factory for the provider `name` (the part before `/` in a spec)."""

    def register(factory: Factory) -> Factory:
        PROVIDERS[name] = factory
        return factory

    return register


def make_client(
    spec: str | ModelRef, options: ApiOptions | None = None, base_url: str | None = None
) -> ChatClient:
    """The client for a model spec or reference; `options` apply to API providers."""
    from lem.config import check

    ref = parse_model_ref(spec, base_url)
    options = options if options is not None else ApiOptions()
    check(options, ref.spec)
    factory = PROVIDERS.get(ref.provider)
    if factory is None:  # parse_model_ref only makes known providers: a lem bug
        raise LemError(f"{ref.spec}: no client for provider {ref.provider!r}")
    return factory(ref, options)


def _retry(options: ApiOptions):
    from lem.clients.retry import RetryPolicy

    return RetryPolicy(max_retries=options.max_retries)


@provider("mlx")
def _mlx(ref: ModelRef, options: ApiOptions) -> ChatClient:
    from lem.clients.mlx import MlxClient

    return MlxClient(ref)


@provider("serve")
def _serve(ref: ModelRef, options: ApiOptions) -> ChatClient:
    from lem.clients.openai import ServedClient

    return ServedClient(ref.path(), options.concurrency, _retry(options), options.timeout)


@provider("gemini")
def _gemini(ref: ModelRef, options: ApiOptions) -> ChatClient:
    from lem.clients.gemini import GeminiClient

    return GeminiClient(
        ref.name, ref.base_url, options.concurrency, _retry(options), options.timeout
    )


@provider("openai")
def _openai(ref: ModelRef, options: ApiOptions) -> ChatClient:
    from lem.clients.openai import OpenAIClient

    return OpenAIClient(
        ref.name, ref.base_url, options.concurrency, _retry(options), options.timeout
    )


def public_url(url: str | None) -> str | None:
    """A base URL fit for a manifest: no user info, query or fragment (where keys could hide)."""
    if url is None:
        return None
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


# List prices in USD per million (input, output) tokens, mid-2025; used for an estimate only.
PRICES: dict[str, tuple[float, float]] = {
    "gemini/gemini-2.0-flash-lite": (0.075, 0.30),
    "gemini/gemini-2.0-flash": (0.10, 0.40),
    "gemini/gemini-2.5-flash-lite": (0.10, 0.40),
    "gemini/gemini-2.5-flash": (0.30, 2.50),
    "gemini/gemini-2.5-pro": (1.25, 10.00),
    "openai/gpt-4o-mini": (0.15, 0.60),
    "openai/gpt-4o": (2.50, 10.00),
    "openai/gpt-4.1-nano": (0.10, 0.40),
    "openai/gpt-4.1-mini": (0.40, 1.60),
    "openai/gpt-4.1": (2.00, 8.00),
    "openai/gpt-5-nano": (0.05, 0.40),
    "openai/gpt-5-mini": (0.25, 2.00),
    "openai/gpt-5": (1.25, 10.00),
}


def estimate_cost(
    ref: ModelRef, prompt_tokens: int, completion_tokens: int
) -> tuple[float | None, str]:
    """(USD, note): an estimate from list prices; None when the price is not known."""
    if ref.local:
        return 0.0, "local model"
    if ref.provider == "openai" and ref.base_url and "api.openai.com" not in ref.base_url:
        return None, "unknown price (not the OpenAI API)"
    matches = [k for k in PRICES if ref.spec == k or ref.spec.startswith(k + "-")]
    if not matches:
        return None, f"unknown price for {ref.spec}"
    best = max(matches, key=len)
    price_in, price_out = PRICES[best]
    cost = (prompt_tokens * price_in + completion_tokens * price_out) / 1e6
    return cost, f"estimate from list prices for {best}"
