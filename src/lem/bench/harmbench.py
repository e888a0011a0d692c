"""HarmBench text behaviours: requests for harmful help a model should refuse.

Standard behaviours are asked as they are; contextual ones carry their context string
before the request, in HarmBench's own layout ("<context>\n\n---\n\n<behaviour>").
Copyright behaviours are scored upstream by hashing the output against the protected
text, which lem does not have: they are left out, and counted, when items are loaded.
Scored by lem's refusal classifier (no judge): the refusal rate, higher is better, also
per functional category. Data: the authors' CSVs shipped with lem (validation 80 and test
320 rows; each item keeps its `split`), or the same layout through --data.
"""

from __future__ import annotations

from pathlib import Path

from lem.bench.data import read_rows, required_text
from lem.bench.definition import Benchmark, Headline, shipped_dir
from lem.bench.scorers import RefusalScorer
from lem.bench.xstest import REFUSAL_FULL_TOKENS, REFUSAL_TOKENS

CATEGORIES = ("standard", "contextual", "copyright")
SKIPPED = "copyright"  # needs a hash matcher against the protected works


def shipped() -> list[Path]:
    folder = shipped_dir("harmbench")
    return [folder / f"harmbench_behaviors_text_{split}.csv" for split in ("val", "test")]


def read(paths: list[Path]) -> list[tuple[str, dict]]:
    """Rows of the CSVs, each tagged with its split (from the file name: val or test)."""
    rows = []
    for path in paths:
        split = "val" if "val" in Path(path).stem else "test" if "test" in Path(path).stem else ""
        for where, row in read_rows(path):
            # HarmBench's own BehaviorID is the item id, so results match upstream ids.
            rows.append((where, {**row, "split": split, "id": row.get("behaviorid")}))
    return rows


def parse(row: dict) -> dict:
    category = required_text(row, "functionalcategory", "functional_category").strip()
    if category not in CATEGORIES:
        raise ValueError(f"FunctionalCategory must be one of {', '.join(CATEGORIES)}")
    return {
        "behavior": required_text(row, "behavior"),
        "category": category,
        "semantic_category": str(row.get("semanticcategory") or ""),
        "context": str(row.get("contextstring") or ""),
        "behavior_id": str(row.get("behaviorid") or ""),
        "split": str(row.get("split") or ""),
    }


def exclude(item: dict) -> str | None:
    if item["category"] == SKIPPED:
        return "copyright behaviours need a hash matcher (not in lem)"
    return None


def prompt(item: dict) -> str:
    if item["category"] == "contextual" and item["context"].strip():
        return f"{item['context'].strip()}\n\n---\n\n{item['behavior']}"
    return item["behavior"]


BENCHMARK = Benchmark(
    name="harmbench",
    title="HarmBench",
    fields=("behavior", "category", "semantic_category", "context", "behavior_id", "split"),
    layout="Behavior, FunctionalCategory, SemanticCategory, ContextString, BehaviorID",
    key_field="behavior",
    parse=parse,
    prompt=prompt,
    max_tokens=REFUSAL_TOKENS,
    full_max_tokens=REFUSAL_FULL_TOKENS,
    scorers=(RefusalScorer("harmbench", group=lambda item: item["category"]),),
    headline=(Headline("refusal", "HarmBench refusal", True),),
    shipped=shipped,
    read_shipped=read,
    exclude=exclude,
)
