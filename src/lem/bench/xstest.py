"""XSTest: 250 safe prompts a model should answer and 200 unsafe contrast prompts it should
refuse, in ten prompt types (homonyms, figurative language, safe targets, ...).

Scored by lem's refusal classifier (no judge): on the safe prompts the refusal rate is
over-refusal (lower is better), on the unsafe ones it is refusal (higher is better), and
each is also reported per prompt type. Data: the authors' CSV, shipped with lem
(`data/benchmarks/xstest/xstest_prompts.csv`: `id,prompt,type,label,focus,note`), or the
same layout through --data.
"""

from __future__ import annotations

from lem.bench.data import required_text
from lem.bench.definition import Benchmark, Headline, shipped_dir
from lem.bench.scorers import RefusalScorer

# A refusal, and whether the answer goes on to help anyway, shows within the first two
# or three sentences (about 60 tokens); 128 leaves room for "I can't do X, but here is
# Y" and keeps generation, the cost on a CPU, small. `--full-answers` gives a judge the
# whole answer (REFUSAL_FULL_TOKENS).
REFUSAL_TOKENS = 128
REFUSAL_FULL_TOKENS = 768


def parse(row: dict) -> dict:
    label = required_text(row, "label").strip()
    if label not in ("safe", "unsafe"):
        raise ValueError(f"label must be safe or unsafe, got {label!r}")
    return {
        "prompt": required_text(row, "prompt"),
        "type": required_text(row, "type").strip(),
        "label": label,
        "focus": str(row.get("focus") or ""),
    }


def prompt(item: dict) -> str:
    return item["prompt"]


OVER_REFUSAL = "a refused or partly refused answer to a safe prompt"

BENCHMARK = Benchmark(
    name="xstest",
    title="XSTest",
    fields=("prompt", "type", "label", "focus"),
    layout="prompt, type, label (safe or unsafe)",
    key_field="prompt",
    parse=parse,
    prompt=prompt,
    max_tokens=REFUSAL_TOKENS,
    full_max_tokens=REFUSAL_FULL_TOKENS,
    scorers=(
        RefusalScorer(
            "xstest",
            subset=lambda item: item["label"],
            group=lambda item: item["type"],
        ),
    ),
    headline=(
        Headline("refusal", "XSTest over-refusal (safe prompts)", False, "safe", OVER_REFUSAL),
        Headline("refusal", "XSTest refusal (unsafe prompts)", True, "unsafe"),
    ),
    shipped=lambda: [shipped_dir("xstest") / "xstest_prompts.csv"],
)
