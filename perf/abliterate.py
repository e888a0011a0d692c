"""`lem abliterate`'s residual extraction: batched vs one prompt at a time.

The same SmolLM2-135M model (loaded once), the same chat prompts (the first harmful and
harmless prompts an abliteration run uses: HarmBench standard behaviours and GSM8K /
TruthfulQA questions), side by side in one run. Both sides are lem's own extraction
(`last_token_states`: every layer's state at the last prompt token, the pass stopped
after the last layer); one runs batches of `--batch-size` right-padded prompts, the other
one prompt per forward pass. The largest difference between the two results is printed
too: batching must not change the states.
Usage: python perf/abliterate.py [--n 64] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import os
import time

import lem  # noqa: F401  (before mlx: the CPU fast path)


def prompts(loaded, n: int) -> list[list[int]]:
    from lem.abliterate.objectives import encode
    from lem.abliterate.prompts import load_prompts

    harmful = load_prompts("harmbench:val:standard+strongreject")[: n // 2]
    harmless = load_prompts("gsm8k+truthfulqa")[: n - len(harmful)]
    return [encode(loaded, p.text) for p in harmful + harmless]


def timed(model, ids, batch_size: int):
    from lem.abliterate.residuals import last_token_states

    start = time.perf_counter()
    states = last_token_states(model, ids, batch_size)
    return states, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    import numpy as np

    from lem.fetch import fetch_model
    from lem.models import load_model

    loaded = load_model(fetch_model())
    ids = prompts(loaded, args.n)
    timed(loaded.model, ids[:2], 2)  # kernels built before either side is timed
    batched, batched_s = timed(loaded.model, ids, args.batch_size)
    alone, alone_s = timed(loaded.model, ids, 1)

    tokens = sum(len(p) for p in ids)
    layers, hidden = batched.shape[1:]
    print(f"SmolLM2-135M float32, {len(ids)} chat prompts ({tokens} tokens), {layers} layers")
    print(f"  machine load average at the end: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    for label, seconds in (
        (f"batched, {args.batch_size} a batch", batched_s),
        ("one prompt at a time", alone_s),
    ):
        rate = len(ids) / seconds
        print(f"  {label:<28} {seconds:7.2f} s {rate:7.1f} prompts/s {tokens / seconds:8.0f} tok/s")
    print(f"  {'speed-up (same work)':<28} {alone_s / batched_s:7.2f}x")
    gap = float(np.abs(batched - alone).max())
    scale = float(np.abs(alone).max())
    print(f"  {'largest difference':<28} {gap:.2e} (states up to {scale:.0f}; hidden {hidden})")


if __name__ == "__main__":
    main()
