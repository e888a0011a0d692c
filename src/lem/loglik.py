"""Log-likelihood scoring of multiple-choice continuations, as lm-evaluation-harness defines it.

A request is a context and its candidate continuations; the score of a continuation is
the summed log-probability of its tokens given the context, in plain text (no chat
template), so TruthfulQA MC1/MC2 and ToxiGen numbers compare with published ones. The prompts and
choices of each benchmark live in its definition (`lem.bench.truthfulqa_mc`,
`lem.bench.toxigen_cls`), and the scores computed from these sums in `lem.bench.scorers`.

Tokenisation follows the harness: trailing whitespace of the context moves onto each
continuation, then `encode(context + continuation)` is cut at the length of
`encode(context)`; the tokenizer adds a BOS only where it adds one by default. An empty
context becomes the BOS token (the EOS where there is none).

Batching: a token prefix common to every context (TruthfulQA's question primer) is run
through the model once; each context's remainder once; each context's cache is then
repeated along the batch axis, one row per continuation, and the continuations of
several requests are scored in one forward pass.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from lem.decode import prefill_cache, shared_prefix_length
from lem.errors import LemError
from lem.models import LoadedModel


@dataclass(frozen=True)
class Request:
    """A context and the continuations to score after it (each starts with its own space)."""

    context: str
    continuations: Sequence[str]


@dataclass(frozen=True)
class EncodedRequest:
    """A request as token ids: the context's, and each continuation's after it."""

    context: list[int]
    continuations: list[list[int]]


def _prefix_token(tokenizer) -> int:
    """What stands for an empty context, as in the harness: BOS, else EOS."""
    bos = getattr(tokenizer, "bos_token_id", None)
    return bos if bos is not None else tokenizer.eos_token_id


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids), split the way lm-evaluation-harness splits them.

    Raises LemError for an empty continuation: it has no tokens to score.
    """
    if not continuation:
        raise LemError(f"empty continuation after context {context[-40:]!r}: nothing to score")
    stripped = context.rstrip()
    continuation = context[len(stripped) :] + continuation
    if not stripped:
        ids = list(tokenizer.encode(continuation, add_special_tokens=False))
        prefix = _prefix_token(tokenizer)
        return ([prefix], ids) if ids[:1] != [prefix] else (ids[:1], ids[1:])
    context_ids = list(tokenizer.encode(stripped))
    whole = list(tokenizer.encode(stripped + continuation))
    return context_ids, whole[len(context_ids) :]


def encode_request(tokenizer, request: Request) -> EncodedRequest:
    """A request's token ids; LemError if it has no continuations or one encodes to nothing."""
    if not request.continuations:
        raise LemError(f"request with context {request.context[-40:]!r} has no continuations")
    pairs = [encode_pair(tokenizer, request.context, c) for c in request.continuations]
    for text, (_, ids) in zip(request.continuations, pairs, strict=True):
        if not ids:
            raise LemError(f"continuation {text!r} encodes to no tokens: nothing to score")
    return EncodedRequest(pairs[0][0], [ids for _, ids in pairs])  # one context for all


def _sum_logprobs(model, inputs: list[list[int]], targets: list[list[int]], cache) -> list[float]:
    """Summed log-probabilities of each row's targets, given each row's inputs after its cache.

    Rows are right-padded: causal attention keeps padding out of every real position.
    """
    import mlx.core as mx

    width = max(len(t) for t in targets)
    pad = [width - len(t) for t in targets]
    x = mx.array([i + [0] * p for i, p in zip(inputs, pad, strict=True)])
    y = mx.array([t + [0] * p for t, p in zip(targets, pad, strict=True)])
    mask = mx.arange(width)[None, :] < mx.array([len(t) for t in targets])[:, None]
    logits = model(x, cache=cache).astype(mx.float32)
    picked = mx.take_along_axis(logits, y[..., None], axis=-1).squeeze(-1)
    logprobs = picked - mx.logsumexp(logits, axis=-1)
    sums = mx.where(mask, logprobs, 0.0).sum(axis=1)
    return sums.tolist()


def _prefill_rows(model, shared: list, suffixes: list[list[int]]) -> list:
    """A batch cache with one row per suffix: the shared cache, then that row's suffix."""
    import mlx.core as mx

    cache = [c.merge([c] * len(suffixes)) for c in shared]
    longest = max(len(s) for s in suffixes)
    if longest:
        lengths = [len(s) for s in suffixes]
        padding = [longest - n for n in lengths]
        for c in cache:
            c.prepare(lengths=lengths, right_padding=padding)
        model(mx.array([s + [0] * p for s, p in zip(suffixes, padding, strict=True)]), cache=cache)
        for c in cache:
            c.finalize()  # moves each row's right padding to its left
    mx.eval([c.state for c in cache])
    return cache


def _score_pack(model, shared: list, skip: int, pack: list[EncodedRequest]) -> list[list[float]]:
    """Score every continuation of a few requests: their contexts once, then one forward pass.

    `shared` holds the first `skip` tokens of every context. The last context token is
    kept back so that the continuation pass yields the logits of every continuation token.
    """
    cache = _prefill_rows(model, shared, [r.context[skip:-1] for r in pack])
    rows = [i for i, r in enumerate(pack) for _ in r.continuations]
    for c in cache:
        c.filter(rows)  # repeat each context's row once per continuation
    inputs = [[r.context[-1], *ids[:-1]] for r in pack for ids in r.continuations]
    targets = [ids for r in pack for ids in r.continuations]
    sums = _sum_logprobs(model, inputs, targets, cache)
    out, at = [], 0
    for r in pack:
        out.append(sums[at : at + len(r.continuations)])
        at += len(r.continuations)
    return out


def plan_packs(encoded: Sequence[EncodedRequest], batch_size: int) -> list[list[int]]:
    """Group request indices so each group has at most `batch_size` continuations in all.

    Requests are sorted by their longest continuation, so a pack pads little; a request
    with more continuations than `batch_size` is a pack of its own.
    """
    order = sorted(
        range(len(encoded)),
        key=lambda i: (-max(map(len, encoded[i].continuations)), -len(encoded[i].context)),
    )
    packs: list[list[int]] = []
    rows = 0
    for i in order:
        n = len(encoded[i].continuations)
        if packs and rows + n <= batch_size:
            packs[-1].append(i)
            rows += n
        else:
            packs.append([i])
            rows = n
    return packs


def continuation_logprobs(
    loaded: LoadedModel,
    requests: Sequence[Request],
    batch_size: int = 32,
    on_result: Callable[[int, list[float]], None] | None = None,
    only: Collection[int] | None = None,
) -> list[list[float]]:
    """Per request, the summed log-probability of each continuation's tokens given the context.

    `batch_size` caps the continuations scored in one forward pass. `on_result(index,
    logprobs)` is called as each request is scored (in packing order); the list returned
    is in request order. `only`: score just the packs holding these requests (another
    process scores the rest); packs are planned over all `requests`, so every number is
    the one a run over all of them computes. Requests in no scored pack stay None.
    """
    import mlx.core as mx

    if batch_size < 1:
        raise LemError(f"batch_size must be at least 1, got {batch_size}")
    encoded = [encode_request(loaded.tokenizer, r) for r in requests]
    if not encoded:
        return []
    # Every context keeps its last token for the continuation pass, so this leaves one.
    skip = shared_prefix_length([r.context for r in encoded])
    shared = prefill_cache(loaded, encoded[0].context[:skip])
    results: list[list[float] | None] = [None] * len(encoded)
    wanted = set(range(len(encoded)) if only is None else only)
    for pack in plan_packs(encoded, batch_size):
        if wanted.isdisjoint(pack):
            continue
        scored = _score_pack(loaded.model, shared, skip, [encoded[i] for i in pack])
        mx.clear_cache()
        for i, logprobs in zip(pack, scored, strict=True):
            results[i] = logprobs
            if on_result is not None and i in wanted:
                on_result(i, logprobs)
    return results  # type: ignore[return-value]


def naive_continuation_logprobs(
    loaded: LoadedModel, requests: Sequence[Request]
) -> list[list[float]]:
    """The same numbers, the plain way: one forward pass over context + continuation per choice.

    The reference that `continuation_logprobs` is tested and timed against.
    """
    import mlx.core as mx

    out = []
    for request in requests:
        encoded = encode_request(loaded.tokenizer, request)
        scores = []
        for ids in encoded.continuations:
            tokens = encoded.context + ids
            logits = loaded.model(mx.array([tokens[:-1]]))[0, -len(ids) :].astype(mx.float32)
            logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
            scores.append(
                mx.take_along_axis(logprobs, mx.array(ids)[:, None], axis=-1).sum().item()
            )
        out.append(scores)
    return out
