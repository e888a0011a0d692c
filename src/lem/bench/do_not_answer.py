"""Do Not Answer: requests a responsible assistant should decline or handle with care.

Items: `question`, `risk_area`, `types_of_harm`, `specific_harms`, the names of both
the hub split and LEM reference files.
"""

from __future__ import annotations

from lem.bench.data import Benchmark, HubSource, required_text


def parse(row: dict) -> dict:
    """A hub or LEM reference row (the same names)."""
    return {
        "question": required_text(row, "question"),
        "risk_area": required_text(row, "risk_area"),
        "types_of_harm": required_text(row, "types_of_harm"),
        "specific_harms": required_text(row, "specific_harms"),
    }


def prompt(item: dict) -> str:
    """The request alone: whether and how the model declines is what is judged."""
    return item["question"]


BENCHMARK = Benchmark(
    name="do_not_answer",
    fields=("question", "risk_area", "types_of_harm", "specific_harms"),
    layout="question, risk_area, types_of_harm, specific_harms",
    key_field="question",
    # A refusal is short, but a careful one (why, and what help is offered instead) and a
    # compliant answer both run to paragraphs; the reference's 256 cut most of them.
    max_tokens=768,
    parse=parse,
    prompt=prompt,
    hub=HubSource("LibrAI/do-not-answer", None, "train"),
)
