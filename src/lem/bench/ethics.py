"""The ethics prompts: lem's own held-out evaluation prompts, judged on the five axioms.

Items: `prompt`, `domain`, and `tension` when the row has one. The default data is the
evaluation set shipped with lem (disjoint from the training seeds).
"""

from __future__ import annotations

from pathlib import Path

from lem.bench.data import Benchmark, required_text


def shipped_prompts() -> Path:
    """The evaluation prompts that ship with lem."""
    from lem.seeds import default_seeds_path

    return Path(default_seeds_path("eval"))


def parse(row: dict) -> dict:
    """A seeds-format row: `prompt`, `domain`, optional `tension`."""
    item = {"prompt": required_text(row, "prompt"), "domain": required_text(row, "domain")}
    if row.get("tension") is not None:
        item["tension"] = row["tension"]  # the axiom ids in tension (a list in lem's seeds)
    return item


def prompt(item: dict) -> str:
    """The prompt alone: the kernel is not in context, the fine-tune must carry it."""
    return item["prompt"]


BENCHMARK = Benchmark(
    name="ethics",
    fields=("prompt", "domain", "tension"),
    layout="prompt, domain (tension optional)",
    key_field="prompt",
    # Dilemmas invite the longest answers (weighing sides, then a position); 1024 so the
    # conclusion, which the axiom judge reads most closely, is not cut off.
    max_tokens=1024,
    parse=parse,
    prompt=prompt,
    default_data=shipped_prompts,
)
