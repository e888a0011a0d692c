"""`lem bench`'s batched generation vs one prompt at a time with `mlx_lm.generate`.

The same SmolLM2-135M model (loaded once), the same chat prompts (GSM8K-style questions
made up here), the same max_tokens, greedy; side by side in one run. The batched side is
lem's whole path (`run_bench`: data file, prompt format, durable appends); the other is
the reference's method: a loop of `mlx_lm.generate` calls (timed through
`mlx_lm.stream_generate`, the loop `generate` runs, to count tokens exactly).
Usage: python perf/bench.py [--n 32] [--max-tokens 64] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from pathlib import Path

import lem  # noqa: F401  (before mlx: the CPU fast path)

THINGS = [
    ("apples", "basket", "baskets"),
    ("pencils", "box", "boxes"),
    ("stamps", "album", "albums"),
    ("eggs", "carton", "cartons"),
]
NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Femi", "Gus", "Hana"]


def questions(n: int) -> list[dict]:
    """n small word problems with their answers, varied in wording and numbers."""
    rows = []
    for i in range(n):
        name, (thing, box, boxes) = NAMES[i % len(NAMES)], THINGS[i % len(THINGS)]
        a, b, c = 3 + i % 7, 4 + (i * 5) % 9, 2 + i % 5
        if i % 2:
            q = f"{name} has {a} {boxes} with {b} {thing} in each and gives away {c} {thing}. "
            q += f"How many {thing} does {name} have left?"
            answer = a * b - c
        else:
            q = f"{name} buys {a} {boxes} of {thing} at ${b} per {box}"
            q += f" and pays with a ${a * b + c * 10} note. How much change does {name} get?"
            answer = c * 10
        rows.append({"question": q, "answer": f"#### {answer}"})
    return rows


def batched(loaded, model_dir: Path, data: Path, out: Path, max_tokens: int, batch_size: int):
    from lem.bench.runner import BenchSettings, run_bench

    settings = BenchSettings(
        benchmarks=["gsm8k"],
        models={"smol": str(model_dir)},
        data={"gsm8k": str(data)},
        out=out,
        max_tokens=max_tokens,
        batch_size=batch_size,
    )
    start = time.perf_counter()
    run_bench(settings, loader=lambda *a, **k: loaded, stream=io.StringIO())
    seconds = time.perf_counter() - start
    rows = [json.loads(x) for x in (out / "gsm8k_smol.jsonl").read_text().splitlines()]
    return {r["id"]: r for r in rows}, seconds


def one_at_a_time(loaded, prompts: dict[str, str], max_tokens: int):
    import mlx_lm

    from lem.decode import encode_chat

    answers, tokens = {}, 0
    start = time.perf_counter()
    for item_id, prompt in prompts.items():
        ids = encode_chat(loaded, [{"role": "user", "content": prompt}])
        text, last = "", None
        for last in mlx_lm.stream_generate(
            loaded.model, loaded.tokenizer, ids, max_tokens=max_tokens
        ):
            text += last.text
        answers[item_id], tokens = text, tokens + last.generation_tokens
    return answers, tokens, time.perf_counter() - start


def first_difference(a: str, b: str) -> int:
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    import mlx_lm

    from lem.decode import encode_chat
    from lem.fetch import fetch_model
    from lem.models import load_model

    model_dir = fetch_model()
    loaded = load_model(model_dir)
    warm = encode_chat(loaded, [{"role": "user", "content": "Hello"}])
    mlx_lm.generate(loaded.model, loaded.tokenizer, prompt=warm, max_tokens=4)  # kernels built

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "questions.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in questions(args.n)))
        results, lem_s = batched(
            loaded, model_dir, data, Path(tmp) / "out", args.max_tokens, args.batch_size
        )
    prompts = {r["id"]: r["prompt"] for r in results.values()}  # the very same texts
    alone, alone_tokens, alone_s = one_at_a_time(loaded, prompts, args.max_tokens)

    lem_tokens = sum(r["tokens"] for r in results.values())
    same = [i for i in prompts if alone[i] == results[i]["response"]]
    stops = sum(r["finish_reason"] == "stop" for r in results.values())
    print(f"SmolLM2-135M float32, {args.n} chat prompts, max_tokens {args.max_tokens}, greedy")
    print(f"  machine load average at the end: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    for label, tokens, seconds in (
        (f"lem bench, batch {args.batch_size}", lem_tokens, lem_s),
        ("mlx_lm.generate, one at a time", alone_tokens, alone_s),
    ):
        print(f"  {label:<32} {tokens:6d} tokens {seconds:8.1f} s {tokens / seconds:7.1f} tok/s")
    print(f"  {'speed-up (same work, wall clock)':<32} {alone_s / lem_s:6.2f}x   goal >= 3x")
    print(f"  {'identical greedy answers':<32} {len(same):>3}/{len(prompts)}   goal >= 95%")
    print(f"  ({stops} answers ended before the cap; mlx_lm counts their end token, lem does not)")
    for i in prompts:
        if i not in same:
            a, b = alone[i], results[i]["response"]
            at = first_difference(a, b)
            token = len(loaded.tokenizer.encode(a[:at]))
            print(
                f"    {i}: differ from character {at} (token ~{token})"
                f": alone {a[at : at + 40]!r} | batched {b[at : at + 40]!r}"
            )


if __name__ == "__main__":
    main()
