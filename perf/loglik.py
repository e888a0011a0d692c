"""Multiple-choice log-likelihood scoring: lem's batched shared-prefix path vs one pass per choice.

The same SmolLM2-135M model (loaded once), the first --n TruthfulQA MC items of the data
shipped with lem, as `lem bench -b truthfulqa_mc` asks them (the authors' six-question QA
primer, then the question; every true and false answer a choice, at most --choices of
them), side by side in one run: `lem.loglik.continuation_logprobs` (primer computed once,
each question once, all choices of several questions in one forward pass) vs
`naive_continuation_logprobs` (one forward pass over context + choice per choice, as a
plain harness-style loop does). Both must give the same numbers.
Usage: python perf/loglik.py [--n 24] [--choices 8] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import os
import time

import lem  # noqa: F401  (before mlx: the CPU fast path)


def make_requests(n: int, most: int):
    """n TruthfulQA MC requests (true answers first) and how many of each request's are true."""
    from lem.bench import get_benchmark
    from lem.bench.truthfulqa_mc import choices
    from lem.loglik import Request

    items = get_benchmark("truthfulqa_mc").load()[:n]
    requests, n_true = [], []
    for item in items:
        c = choices(item)
        keep = [i for i, t in enumerate(c.true) if t][: most // 2]
        keep += [i for i, t in enumerate(c.true) if not t][: most - len(keep)]
        requests.append(Request(c.context, [c.continuations[i] for i in keep]))
        n_true.append(sum(c.true[i] for i in keep))
    return requests, n_true


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=24)
    parser.add_argument("--choices", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    from lem.bench.scorers import mc2
    from lem.fetch import fetch_model
    from lem.loglik import continuation_logprobs, encode_request, naive_continuation_logprobs
    from lem.models import load_model

    loaded = load_model(fetch_model())
    requests, n_true = make_requests(args.n, args.choices)
    naive_continuation_logprobs(loaded, requests[:1])  # kernels built, caches warm
    continuation_logprobs(loaded, requests[:2], batch_size=args.batch_size)

    batched, lem_s = timed(continuation_logprobs, loaded, requests, batch_size=args.batch_size)
    naive, naive_s = timed(naive_continuation_logprobs, loaded, requests)

    encoded = [encode_request(loaded.tokenizer, r) for r in requests]
    n_choices = sum(len(e.continuations) for e in encoded)
    context = sum(len(e.context) for e in encoded) / len(encoded)
    answer = sum(len(c) for e in encoded for c in e.continuations) / n_choices
    diff = [
        abs(a - b)
        for ra, rb in zip(batched, naive, strict=True)
        for a, b in zip(ra, rb, strict=True)
    ]
    mc2_diff = [
        abs(mc2(a, [i < k for i in range(len(a))]) - mc2(b, [i < k for i in range(len(b))]))
        for a, b, k in zip(batched, naive, n_true, strict=True)
    ]
    same_best = sum(
        max(range(len(a)), key=a.__getitem__) == max(range(len(b)), key=b.__getitem__)
        for a, b in zip(batched, naive, strict=True)
    )
    print(
        f"SmolLM2-135M float32, {len(requests)} TruthfulQA-MC-shaped requests, "
        f"{n_choices} choices ({n_choices / len(requests):.1f} each), "
        f"context {context:.0f} tokens, answer {answer:.1f} tokens on average"
    )
    print(f"  machine load average at the end: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    for label, seconds in (
        (f"lem batched shared-prefix, batch {args.batch_size}", lem_s),
        ("one forward pass per choice", naive_s),
    ):
        print(f"  {label:<40} {seconds:8.2f} s {n_choices / seconds:7.1f} choices/s")
    print(f"  {'speed-up (same work, wall clock)':<40} {naive_s / lem_s:8.2f}x")
    mean = sum(diff) / len(diff)
    print(f"  {'max |log-prob difference|':<40} {max(diff):10.2e}  (mean {mean:.2e})")
    print(f"  {'max |MC2 difference|':<40} {max(mc2_diff):10.2e}")
    print(f"  {'same top choice':<40} {same_best:>4}/{len(requests)}")


if __name__ == "__main__":
    main()
