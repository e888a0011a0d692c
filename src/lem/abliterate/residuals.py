"""Residual-stream states at each prompt's last token after every layer, batched.

MLX has no forward hooks, so for one forward pass every transformer layer is swapped for
a `_Tap`: a module that calls the layer, keeps the hidden state at each prompt's last
token, and passes every other attribute lookup through to the layer (a model's own loop
reads attributes such as `use_sliding` from its layers). After the last layer the pass
stops: the final norm and the vocabulary projection are never run.

Prompts in a batch are right-padded. Under a causal mask a real token attends only to the
tokens before it, all real, and its rotary position is its own index, so each prompt's
last-token state is the one it has alone (up to float rounding of other matrix shapes),
with no attention mask to build: the same code serves every mlx-lm family whose layers
are called one after another on the hidden state (llama, gemma3, qwen2/3, mistral, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from lem.errors import LemError


class _Stop(Exception):
    """Raised after the last layer: what follows it is not needed."""


class _Tap(nn.Module):
    """A layer that reports its output hidden state to `sink(index, h)`."""

    def __init__(self, layer: nn.Module, index: int, sink: Callable, last: bool):
        super().__init__()
        self.layer = layer
        self._index, self._sink, self._last = index, sink, last

    def __getattr__(self, name: str) -> Any:
        if name in self:
            return self[name]
        layer = dict.get(self, "layer")
        if layer is None:
            raise AttributeError(name)
        return getattr(layer, name)

    def __call__(self, x: mx.array, *args: Any, **kwargs: Any) -> Any:
        out = self.layer(x, *args, **kwargs)
        self._sink(self._index, out[0] if isinstance(out, tuple) else out)
        if self._last:
            raise _Stop
        return out


def layer_owner(model: nn.Module) -> list:
    """The list that holds the transformer layers (`model.layers` can be a fresh slice)."""
    layers = list(model.layers)
    if not layers:
        raise LemError("the model has no transformer layers (model.layers is empty)")
    for _, module in model.named_modules():
        held = module.get("layers")
        if isinstance(held, list) and any(x is layers[0] for x in held):
            return held
    raise LemError(f"{type(model).__module__}: cannot find the list holding model.layers")


@contextmanager
def tapped(model: nn.Module, sink: Callable[[int, mx.array], None]) -> Iterator[None]:
    """Every layer of `model` reports to `sink` while inside; the layers are put back after."""
    owner = layer_owner(model)
    layers = list(model.layers)
    slots = [next(j for j, x in enumerate(owner) if x is layer) for layer in layers]
    for i, (slot, layer) in enumerate(zip(slots, layers, strict=True)):
        owner[slot] = _Tap(layer, i, sink, last=i == len(layers) - 1)
    try:
        yield
    finally:
        for slot, layer in zip(slots, layers, strict=True):
            owner[slot] = layer


def right_padded(prompts: Sequence[Sequence[int]], pad: int = 0) -> tuple[mx.array, mx.array]:
    """Token ids padded on the right to one width, and each prompt's last real position."""
    width = max(len(p) for p in prompts)
    tokens = mx.array([list(p) + [pad] * (width - len(p)) for p in prompts])
    return tokens, mx.array([len(p) - 1 for p in prompts])


def _batch_states(model: nn.Module, prompts: Sequence[Sequence[int]]) -> np.ndarray:
    """(batch, layers, hidden) last-token states of one batch, as float32."""
    tokens, last = right_padded(prompts)
    rows = mx.arange(len(prompts))
    kept: dict[int, mx.array] = {}

    def sink(index: int, h: mx.array) -> None:
        kept[index] = h[rows, last]

    with tapped(model, sink):
        try:
            model(tokens)
        except _Stop:
            pass
    states = mx.stack([kept[i] for i in range(len(kept))], axis=1).astype(mx.float32)
    mx.eval(states)
    return np.array(states)


def batches(order: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(order), size):
        yield list(order[start : start + size])


def last_token_states(
    model: nn.Module,
    prompts: Sequence[Sequence[int]],
    batch_size: int = 16,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """The hidden state after every layer at each prompt's last token: (prompts, layers,
    hidden), float32, in prompt order. Prompts are batched by length (less padding);
    `on_batch(n)` is told how many prompts each batch finished."""
    if not prompts:
        raise ValueError("no prompts")
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: np.ndarray | None = None
    for chunk in batches(order, batch_size):
        states = _batch_states(model, [prompts[i] for i in chunk])
        if out is None:
            out = np.zeros((len(prompts), *states.shape[1:]), dtype=np.float32)
        out[chunk] = states
        if on_batch is not None:
            on_batch(len(chunk))
    return out  # type: ignore[return-value]
