"""Batched generation with prompts shortest first (lem's default) vs in the order given.

mlx-lm prefills a batch's prompts in groups padded to the longest prompt of each group,
so a benchmark that mixes short prompts with long ones (HarmBench's contextual
behaviours run to 700 tokens) pays for the padding. The same model (SmolLM2-135M,
loaded once), the same prompts as the quick profile's bench (the limits, caps and
seed), greedy; side by side in one run, with the answers compared.
Usage: python perf/prompt_order.py [--bench harmbench ethics]
"""

from __future__ import annotations

import argparse
import os
import time

import lem  # noqa: F401  (before mlx: the CPU fast path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", nargs="+", default=["harmbench", "ethics"])
    args = parser.parse_args()

    from lem.bench import get_benchmark, load_items
    from lem.bench.runner import encode_prompt, prompt_format
    from lem.config import read_toml
    from lem.decode import encode_chat, generate_batch
    from lem.experiment import shipped_experiment
    from lem.fetch import fetch_model
    from lem.models import load_model

    quick = read_toml(shipped_experiment("quick"))["bench"]
    model_dir = fetch_model()
    loaded, fmt = load_model(model_dir), prompt_format(model_dir)
    generate_batch(loaded, [encode_chat(loaded, [{"role": "user", "content": "Hi"}])], 4)
    print("SmolLM2-135M float32, batch 32, greedy; the quick profile's items")
    for name in args.bench:
        bench = get_benchmark(name)
        items = load_items(bench, None, quick["limits"].get(name), quick["seed"]).items
        prompts = [encode_prompt(loaded, fmt, bench.prompt(item)) for item in items]
        cap = quick["caps"].get(name, bench.max_tokens)
        lengths = sorted(map(len, prompts))
        print(
            f"{name}: {len(prompts)} prompts of {lengths[0]}-{lengths[-1]} tokens "
            f"(median {lengths[len(lengths) // 2]}), answers up to {cap} tokens"
        )
        answers, seconds = {}, {}
        for label, shortest_first in (("shortest first", True), ("order given", False)):
            start = time.perf_counter()
            answers[label] = generate_batch(loaded, prompts, cap, shortest_first=shortest_first)
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
