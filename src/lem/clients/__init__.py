"""Chat clients: one interface, four providers (in-process MLX, a served local model,
Gemini, any OpenAI-compatible server). See `lem.clients.base` for the interface,
`lem.clients.registry` for providers and `make_client`, `lem.models` for model specs.

A request that fails after bounded retries comes back as a `ChatResult` with no text and
a status saying why; it is never replaced by a made-up answer. Secrets never appear in
errors or stored text.
"""

from lem.clients.base import ApiOptions, ChatClient, ChatRequest, ChatResult, usage_summary
from lem.clients.registry import estimate_cost, make_client, public_url

__all__ = [
    "ApiOptions",
    "ChatClient",
    "ChatRequest",
    "ChatResult",
    "estimate_cost",
    "make_client",
    "public_url",
    "usage_summary",
]
