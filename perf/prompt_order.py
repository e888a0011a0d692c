"""Batched generation with prompts shortest first (lem's default) vs in the order given.

mlx-lm prefills a batch's prompts in groups padded to the longest prompt of each group,
so a benchmark that mixes short prompts with long ones (HarmBench's contextual
behaviours run to 700 tokens) pays for the padding. The same model (SmolLM2-135M,
loaded once), the same prompts as the quick profile's bench (its limits, caps and
seed), greedy; side by side in one run, with the answers compared.
Usage: python perf/prompt_order.py [--bench harmbench ethics]
"""

from __future__ import annotations

import argparse
import os
import time

import lem  # noqa: F401  (before mlx: the CPU fast path)

LIMITS = {"harmbench": 50, "ethics": 122, "xstest": 110, "gsm8k": 20}  # as quick.toml
CAPS = {"harmbench": 48, "ethics": 48, "xstest": 48, "gsm8k": 256}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", nargs="+", default=["harmbench", "ethics"], choices=LIMITS)
    args = parser.parse_args()

    from lem.bench import get_benchmark, load_items
    from lem.decode import encode_chat, generate_batch
    from lem.fetch import fetch_model
    from lem.models import load_model

    loaded = load_model(fetch_model())
    generate_batch(loaded, [encode_chat(loaded, [{"role": "user", "content": "Hi"}])], 4)
    print("SmolLM2-135M float32, batch 32, greedy; the quick profile's items")
    for name in args.bench:
        bench = get_benchmark(name)
        items = load_items(bench, None, LIMITS[name], 0).items
        prompts = []
        for item in items:
            prompt = bench.prompt(item)
            messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
            prompts.append(encode_chat(loaded, messages))
        lengths = sorted(map(len, prompts))
        print(
            f"{name}: {len(prompts)} prompts of {lengths[0]}-{lengths[-1]} tokens "
            f"(median {lengths[len(lengths) // 2]}), answers up to {CAPS[name]} tokens"
        )
        answers, seconds = {}, {}
        for label, shortest_first in (("shortest first", True), ("order given", False)):
            start = time.perf_counter()
            answers[label] = generate_batch(
                loaded, prompts, CAPS[name], shortest_first=shortest_first
            )
            seconds[label] = time.perf_counter() - start
            tokens = sum(g.tokens for g in answers[label])
            print(f"  {label:<16} {seconds[label]:7.1f} s  ({tokens} answer tokens)")
        same = sum(
            a.text == b.text
            for a, b in zip(answers["shortest first"], answers["order given"], strict=True)
        )
        ratio = seconds["order given"] / seconds["shortest first"]
        print(f"  speed-up {ratio:.2f}x; identical answers {same}/{len(prompts)}")
    print(f"machine load average at the end: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
