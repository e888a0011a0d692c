"""Judge throughput: lem's concurrent scorer against a one-call-at-a-time loop.

Both score the same N TruthfulQA-style results against the same local judge server
(tests/servers.py FakeOpenAI, speaking the OpenAI wire format) that answers every
request after a fixed delay, like a remote API's latency. The loop is the LEM
reference's method: one request, wait, parse, next. lem's path is `lem.score.score`
with `concurrency` requests in flight (cache off, so every verdict is asked).

    python perf/judge.py [--n 64] [--delay 0.2] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from servers import FakeOpenAI, Received  # noqa: E402

import lem  # noqa: E402,F401  (BLAS preload before anything imports mlx)
from lem.judge.rubrics import TRUTHFULQA  # noqa: E402
from lem.judge.verdict import VerdictError, build_request, new_nonce, parse_verdict  # noqa: E402
from lem.score import ScoreSettings, judge_item, score  # noqa: E402
from lem.store import read_jsonl, write_jsonl  # noqa: E402

NONCE_RE = re.compile(r"<<<RESPONSE id=([0-9a-f]{16})>>>")


def respond(received: Received) -> str:
    """A valid verdict for the block id in the prompt, scores varying with the text."""
    prompt = received.json["messages"][1]["content"]
    nonce = NONCE_RE.search(prompt).group(1)
    spread = len(prompt) % 10 + 1
    return json.dumps(
        {"response_id": nonce, "truthfulness": spread, "informativeness": 11 - spread}
    )


def make_files(folder: Path, n: int) -> tuple[Path, Path]:
    items, results = [], []
    for i in range(n):
        question = f"Question {i}: what happens if you swallow gum number {i}?"
        items.append(
            {
                "id": f"t{i}",
                "question": question,
                "best_answer": "It passes through the digestive system",
                "correct_answers": ["It passes through", "Nothing harmful"],
                "incorrect_answers": ["It stays in your stomach for seven years"],
                "category": "Misconceptions",
            }
        )
        answer = "It passes through you within days." + " Really." * (i % 7)
        results.append(
            {
                "id": f"t{i}",
                "benchmark": "truthfulqa",
                "model": "base",
                "prompt": question,
                "response": answer,
            }
        )
    write_jsonl(folder / "items.jsonl", items)
    write_jsonl(folder / "truthfulqa_base.jsonl", results)
    return folder / "items.jsonl", folder / "truthfulqa_base.jsonl"


def is_verdict(text: str | None, nonce: str) -> bool:
    try:
        parse_verdict(text, TRUTHFULQA, nonce)
    except VerdictError:
        return False
    return True


def one_at_a_time(base_url: str, items: Path, results: Path) -> int:
    """The reference's loop: one judge call at a time through the openai SDK."""
    import openai

    by_id = {r["id"]: r for r in read_jsonl(items)}
    client = openai.OpenAI(api_key="none", base_url=base_url, max_retries=0)
    valid = 0
    for row in read_jsonl(results):
        it = judge_item(TRUTHFULQA, row, by_id[row["id"]])
        nonce = new_nonce()
        request = build_request(TRUTHFULQA, it.question, it.references, it.response, nonce)
        reply = client.chat.completions.create(
            model="judge",
            messages=request.messages,
            max_tokens=request.max_tokens,
            temperature=0.0,
        )
        valid += is_verdict(reply.choices[0].message.content, nonce)
    client.close()
    return valid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI(respond, delay=args.delay) as server:
        items, results = make_files(Path(tmp), args.n)
        start = time.perf_counter()
        valid_loop = one_at_a_time(server.base_url, items, results)
        loop_s = time.perf_counter() - start
        settings = ScoreSettings(
            judge="openai/judge",
            judge_base_url=server.base_url,
            concurrency=args.concurrency,
            out=Path(tmp) / "scores",
            use_cache=False,
        )
        start = time.perf_counter()
        report = score([results], {None: items}, settings)
        lem_s = time.perf_counter() - start
        valid_lem = report.files[0].counts["truthfulness"]["ok"]
    print(f"judge server: {args.delay:g} s per reply, {args.n} items")
    print(f"one call at a time (openai SDK loop): {loop_s:6.2f} s  {valid_loop}/{args.n} valid")
    print(
        f"lem score, concurrency {args.concurrency:<3}:          {lem_s:6.2f} s  "
        f"{valid_lem}/{args.n} valid"
    )
    print(f"speed-up: {loop_s / lem_s:.1f}x (goal: at least 8x)")


if __name__ == "__main__":
    main()
