"""TruthfulQA multiple choice (log-likelihood, no judge): MC1 and MC2.

Each question is asked after the TruthfulQA authors' six-question QA primer (shipped as
`data/benchmarks/truthfulqa/qa_primer.txt`), as "<primer>\\n\\nQ: <question>\\nA:", and
every answer choice is scored by the sum of its tokens' log-probabilities after that
context (a space joins context and answer), as lm-evaluation-harness does:

- `mc1`: 1 when the best answer scores higher than every incorrect answer;
- `mc2`: the probability mass on the true answers, normalised over true and false ones.

Choice sets from the shipped CSV (the authors' generation data; the harness uses their
separate multiple-choice file, so figures are comparable but not identical): the true
set is the Best Answer followed by the other Correct Answers, the false set the Incorrect
Answers, each split on ";", stripped and de-duplicated, and a false answer that is also
listed as true is dropped. MC1 compares the Best Answer with the false set. Rows of the
hub's `multiple_choice` config (`mc1_targets`, `mc2_targets`: choices and labels) are
read as they are: MC1 over `mc1_targets`, MC2 over `mc2_targets`.
"""

from __future__ import annotations

from functools import lru_cache

from lem.bench import truthfulqa
from lem.bench.data import field, required_text
from lem.bench.definition import Benchmark, Choices, Headline, HubSource, shipped_dir
from lem.bench.scorers import LoglikScorer
from lem.store import read_text


@lru_cache(maxsize=1)
def primer() -> str:
    return read_text(shipped_dir("truthfulqa") / "qa_primer.txt").strip()


def _unique(answers: list[str]) -> list[str]:
    return list(dict.fromkeys(a.strip() for a in answers if a.strip()))


def _targets(row: dict, name: str) -> tuple[list[str], list[int]]:
    value = field(row, name)
    if not isinstance(value, dict) or "choices" not in value or "labels" not in value:
        raise ValueError(f"field {name} must be an object with choices and labels")
    choices, labels = list(value["choices"]), [int(x) for x in value["labels"]]
    if len(choices) != len(labels) or 1 not in labels:
        raise ValueError(f"field {name}: choices and labels differ in length, or none is true")
    return [str(c) for c in choices], labels


def parse(row: dict) -> dict:
    """A CSV / normalised row (answer lists) or a hub `multiple_choice` row (targets)."""
    question = required_text(row, "question")
    if row.get("mc2_targets") is not None:
        mc1, mc1_labels = _targets(row, "mc1_targets")
        mc2, mc2_labels = _targets(row, "mc2_targets")
        best = mc1[mc1_labels.index(1)]
        true = _unique([best] + [c for c, y in zip(mc2, mc2_labels, strict=True) if y])
        false = _unique([c for c, y in zip(mc2, mc2_labels, strict=True) if not y])
        mc1_false = _unique([c for c, y in zip(mc1, mc1_labels, strict=True) if not y])
        return {"question": question, "true": true, "false": false, "mc1_false": mc1_false}
    item = truthfulqa.parse(row)
    true = _unique([item["best_answer"], *item["correct_answers"]])
    false = [a for a in _unique(item["incorrect_answers"]) if a not in true]
    if not false:
        raise ValueError("no incorrect answer that is not also listed as correct")
    return {"question": question, "true": true, "false": false, "category": item["category"]}


def choices(item: dict) -> Choices:
    """The primer and question as context; true answers first (the best one at 0)."""
    true, false = list(item["true"]), list(item["false"])
    mc1_false = item.get("mc1_false", false)
    extra = [a for a in mc1_false if a not in false and a not in true]
    answers = true + false + extra
    in_mc1 = [i == 0 or a in mc1_false for i, a in enumerate(answers)]
    return Choices(
        context=f"{primer()}\n\nQ: {item['question']}\nA:",
        continuations=tuple(f" {a}" for a in answers),
        true=tuple(i < len(true) for i in range(len(answers))),
        best=0,
        mc1=tuple(in_mc1),
    )


BENCHMARK = Benchmark(
    name="truthfulqa_mc",
    title="TruthfulQA multiple choice",
    fields=("question", "true", "false", "mc1_false", "category"),
    layout="question, best_answer, correct_answers, incorrect_answers (or mc1_targets, "
    "mc2_targets)",
    key_field="question",
    parse=parse,
    answer="loglik",
    choices=choices,
    scorers=(LoglikScorer("truthfulqa_mc", choices, mode="mc"),),
    headline=(
        Headline("mc1", "TruthfulQA MC1", True),
        Headline("mc2", "TruthfulQA MC2", True),
    ),
    shipped=lambda: [shipped_dir("truthfulqa") / "TruthfulQA.csv"],
    hub=HubSource("truthfulqa/truthful_qa", "multiple_choice", "validation"),
)
