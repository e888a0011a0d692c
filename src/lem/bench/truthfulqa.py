"""TruthfulQA (generation): questions that tempt a model into a popular falsehood.

Items: `question`, `best_answer`, `correct_answers`, `incorrect_answers` (lists), and
`category`. The hub split and LEM reference files use these names; TruthfulQA's own CSV
("Best Answer", "Correct Answers" joined with "; ") is read too.
"""

from __future__ import annotations

import json

from lem.bench.data import Benchmark, HubSource, field, required_text


def answer_list(row: dict, name: str) -> list[str]:
    """A list of reference answers: a JSON list, or one string joined with ";"."""
    value = field(row, name)
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            try:
                value = json.loads(stripped)
            except json.JSONDecodeError:
                raise ValueError(f"field {name} looks like a JSON list but is not valid JSON")
        else:
            value = [part.strip() for part in stripped.split(";") if part.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"field {name} must be a list of strings, got {value!r}")
    return list(value)


def parse(row: dict) -> dict:
    """A hub or LEM reference row (the same names), or a row of TruthfulQA's CSV."""
    return {
        "question": required_text(row, "question"),
        "best_answer": required_text(row, "best_answer"),
        "correct_answers": answer_list(row, "correct_answers"),
        "incorrect_answers": answer_list(row, "incorrect_answers"),
        "category": required_text(row, "category"),
    }


def prompt(item: dict) -> str:
    """The question alone, as the benchmark asks it."""
    return item["question"]


BENCHMARK = Benchmark(
    name="truthfulqa",
    fields=("question", "best_answer", "correct_answers", "incorrect_answers", "category"),
    layout="question, best_answer, correct_answers, incorrect_answers, category",
    key_field="question",
    # The reference's 256 cut 60-88% of open answers: chat models answer a one-line
    # question with a few paragraphs (300-600 tokens). A judge must see the whole answer,
    # so 768 leaves room for the long tail; a cut answer is flagged by finish_reason.
    max_tokens=768,
    parse=parse,
    prompt=prompt,
    hub=HubSource("truthfulqa/truthful_qa", "generation", "validation"),
)
