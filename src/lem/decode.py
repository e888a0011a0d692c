"""Batched decoding on a loaded MLX model (`lem.decode`, not the `generate` stage), with each
answer's finish reason.

Wraps mlx-lm's continuous-batching `BatchGenerator` so every stage (teacher, bench,
judge, chat) gets the same thing: token ids in, (text, finish_reason, tokens) out,
each result handed to a callback as soon as it finishes so callers can append it
durably.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lem.models import LoadedModel


@dataclass
class Generation:
    """One finished answer: `finish_reason` is "stop" (end of turn) or "length" (hit the cap)."""

    text: str
    finish_reason: str
    tokens: int
    prompt_tokens: int
    seconds: float


def encode_chat(loaded: LoadedModel, messages: Sequence[dict]) -> list[int]:
    """Token ids of a chat, ending with the assistant's turn, via the model's chat template.

    Templates that reject a system role (Gemma's, for one) get the system text at the top
    of the first user turn instead, which is how those models are meant to receive it.
    """
    messages = list(messages)
    try:
        ids = loaded.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True
        )
    except Exception:  # jinja raises TemplateError via raise_exception(); retry only for system
        if not messages or messages[0]["role"] != "system" or len(messages) < 2:
            raise
        system, first, *rest = messages
        merged = {"role": first["role"], "content": f"{system['content']}\n\n{first['content']}"}
        ids = loaded.tokenizer.apply_chat_template(
            [merged, *rest], add_generation_prompt=True, tokenize=True
        )
    return list(ids)


def encode_text(loaded: LoadedModel, text: str) -> list[int]:
    """Token ids of plain text (for base models without a chat template)."""
    return list(loaded.tokenizer.encode(text))


# Below this many shared leading tokens, prefix caching saves too little to bother.
SHARED_PREFIX_MIN = 256


def shared_prefix_length(prompts: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix common to all prompts, leaving each at least one token."""
    first = prompts[0]
    n = min(len(p) for p in prompts) - 1
    for p in prompts[1:]:
        i = 0
        while i < n and p[i] == first[i]:
            i += 1
        n = i
    return max(n, 0)


def prefill_cache(loaded: LoadedModel, tokens: Sequence[int], step: int = 2048) -> list:
    """A KV cache holding `tokens`, computed once, to start many prompts from."""
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    cache = make_prompt_cache(loaded.model)
    for i in range(0, len(tokens), step):
        loaded.model(mx.array([list(tokens[i : i + step])]), cache=cache)
        mx.eval([c.state for c in cache])
    return cache


def generate_batch(
    loaded: LoadedModel,
    prompts: Sequence[Sequence[int]],
    max_tokens: int | Sequence[int],
    temperature: float = 0.0,
    seed: int | None = None,
    batch_size: int = 32,
    on_result: Callable[[int, Generation], None] | None = None,
    share_prefix: bool = True,
    repetition_penalty: float | None = None,
    on_step: Callable[[], None] | None = None,
    shortest_first: bool = True,
) -> list[Generation]:
    """Generate an answer for each prompt (token ids), `batch_size` sequences at a time.

    Greedy when `temperature` is 0. `on_result(index, generation)` is called as each
    answer finishes, in finishing order; answers that finish at the same decoding step
    come in one burst, after which `on_step()` is called (where progress is best shown).
    The list returned is in prompt order.
    With `share_prefix`, a long prefix common to all prompts (a teacher's kernel, say)
    is run through the model once and its KV cache reused by every prompt, instead of
    being recomputed per prompt: the same numbers, a fraction of the prefill work.
    `repetition_penalty` (mlx-lm's, over the last 20 tokens) keeps small models out of loops.
    With `shortest_first`, prompts enter the model in order of length: mlx-lm prefills
    them in groups padded to the longest of each, so in the given order short prompts
    are padded to long ones (HarmBench's 50: twice the time for the same answers;
    perf/prompt_order.py).
    """
    import mlx.core as mx
    from mlx_lm.generate import BatchGenerator
    from mlx_lm.sample_utils import make_logits_processors, make_sampler

    if not prompts:
        return []
    if seed is not None:
        mx.random.seed(seed)
    caps = [max_tokens] * len(prompts) if isinstance(max_tokens, int) else list(max_tokens)
    tokenizer = loaded.tokenizer
    gen = BatchGenerator(
        loaded.model,
        stop_tokens=[[t] for t in tokenizer.eos_token_ids],
        sampler=make_sampler(temp=temperature),
        logits_processors=make_logits_processors(repetition_penalty=repetition_penalty),
        completion_batch_size=batch_size,
        prefill_batch_size=min(batch_size, 8),
    )
    start = time.perf_counter()
    shared = shared_prefix_length(prompts) if share_prefix and len(prompts) > 1 else 0
    caches = None
    if shared >= SHARED_PREFIX_MIN:
        cache = prefill_cache(loaded, prompts[0][:shared])
        caches = [cache] * len(prompts)  # BatchGenerator copies caches; it never writes them
    else:
        shared = 0
    try:
        order = list(range(len(prompts)))
        if shortest_first:
            order.sort(key=lambda i: len(prompts[i]))
        uids = gen.insert(
            [list(prompts[i][shared:]) for i in order], [caps[i] for i in order], caches=caches
        )
        index = {uid: i for uid, i in zip(uids, order, strict=True)}
        tokens: dict[int, list[int]] = {uid: [] for uid in uids}
        results: list[Generation | None] = [None] * len(prompts)
        while responses := gen.next_generated():
            finished = False
            for r in responses:
                if r.finish_reason != "stop":
                    tokens[r.uid].append(r.token)
                if r.finish_reason is None:
                    continue
                i = index[r.uid]
                results[i] = Generation(
                    text=tokenizer.decode(tokens[r.uid]),
                    finish_reason=r.finish_reason,
                    tokens=len(tokens[r.uid]),
                    prompt_tokens=len(prompts[i]),
                    seconds=time.perf_counter() - start,
                )
                finished = True
                if on_result is not None:
                    on_result(i, results[i])
            if finished and on_step is not None:
                on_step()
    finally:
        gen.close()
    missing = [i for i, r in enumerate(results) if r is None]
    if missing:
        raise RuntimeError(f"batch generation returned no result for prompts {missing}")
    return results  # type: ignore[return-value]
