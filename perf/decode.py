"""SmolLM2-135M decode tokens/s: lem's loading path vs a plain `mlx_lm.load` of the 4-bit import.

Variants run in fresh processes, side by side in one run, on the same prompt:
  plain     mlx_lm.load of the 4-bit import, as a user of mlx-lm alone would run it
  lem       lem.models.load_model of the same directory (on a CPU: de-quantized to float32,
            with the OpenBLAS fast path)
  lem x16   lem's batched generation, 16 prompts at once (aggregate tokens/s)
Usage: python perf/decode.py [--tokens 128]
"""

from __future__ import annotations

import argparse
import subprocess
import sys

PROMPT = "Explain in a few sentences why the sky is blue."

PLAIN = """
import time, mlx_lm
from mlx_lm import stream_generate
model, tok = mlx_lm.load({path!r})
ids = tok.apply_chat_template([{{"role": "user", "content": {prompt!r}}}],
                              add_generation_prompt=True)
for _ in stream_generate(model, tok, ids, max_tokens=8): pass  # warm up
last = None
for last in stream_generate(model, tok, ids, max_tokens={tokens}): pass
print(f"{{last.generation_tps:.2f}}\\t{{last.generation_tokens}}")
"""

LEM = """
import lem, time
from mlx_lm import stream_generate
from lem.models import load_model
from lem.decode import encode_chat, generate_batch
m = load_model({path!r})
ids = encode_chat(m, [{{"role": "user", "content": {prompt!r}}}])
if {batch} == 1:
    for _ in stream_generate(m.model, m.tokenizer, ids, max_tokens=8): pass
    last = None
    for last in stream_generate(m.model, m.tokenizer, ids, max_tokens={tokens}): pass
    print(f"{{last.generation_tps:.2f}}\\t{{last.generation_tokens}}")
else:
    generate_batch(m, [ids] * 2, max_tokens=8)
    start = time.perf_counter()
    out = generate_batch(m, [ids] * {batch}, max_tokens={tokens})
    n = sum(g.tokens for g in out)
    print(f"{{n / (time.perf_counter() - start):.2f}}\\t{{n}}")
"""


def run(code: str) -> tuple[float, int]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-2000:])
    tps, n = out.stdout.strip().splitlines()[-1].split("\t")
    return float(tps), int(n)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()
    import lem  # noqa: F401  (fast BLAS for this process's own imports)
    from lem.fetch import fetch_model

    q4 = str(fetch_model(dtype="keep"))
    kw = {"path": q4, "prompt": PROMPT, "tokens": args.tokens}
    plain = run(PLAIN.format(**kw))
    single = run(LEM.format(batch=1, **kw))
    batched = run(LEM.format(batch=16, **kw))
    print(f"SmolLM2-135M-Instruct, 4-bit import at {q4}, up to {args.tokens} new tokens, greedy")
    print(f"  plain mlx_lm.load (4-bit)          {plain[0]:7.1f} tok/s  ({plain[1]} tokens)")
    print(f"  lem load_model (float32 + BLAS)    {single[0]:7.1f} tok/s  ({single[1]} tokens)")
    print(f"  lem batched x16 (aggregate)        {batched[0]:7.1f} tok/s  ({batched[1]} tokens)")
    print(f"  single-stream speed-up             {single[0] / plain[0]:7.1f}x")
    print(f"  batched speed-up                   {batched[0] / plain[0]:7.1f}x")


if __name__ == "__main__":
    main()
