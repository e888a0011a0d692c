"""GSM8K: grade-school maths word problems, scored by the final number.

Items: `question`, `answer` (the final number as a string). Hub rows end their worked
answer with `#### <number>`; LEM reference files carry `correct_answer`.

The extractor reads a model's final number from the forms models actually write, in
this order: `#### n` (the format the prompt asks for), `\\boxed{n}`, "the (final) answer
is n" / "Final Answer: n", else the last number in the text. Each extraction records the
rule that fired; `extract_strict` accepts only `#### n`. A marker's number is read from
its own statement only (up to the end of the sentence or line), so `#### 18. Check: 18
= 2 * 9` reads 18; a negated answer ("the answer is not 12, it is 18") reads the number
that is asserted; `2*9` is a product, not the number 29 (only Markdown emphasis `*` is
removed).

Data: the 1,319 test problems shipped with lem (`data/benchmarks/gsm8k/test.jsonl`, the
authors' JSONL: `question`, `answer` ending `#### <number>`), a file in that layout or a
LEM reference file (`correct_answer`) through --data, or the hub split.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from lem.bench.data import field, required_text
from lem.bench.definition import Benchmark, Headline, HubSource, shipped_dir
from lem.bench.scorers import ExactScorer

# A number as written in an answer: optional minus (ASCII or Unicode), optional dollar
# sign (also LaTeX's \$), thousands commas only in groups of three, optional decimals.
# The look-behind keeps "10-3" from reading as minus three and "v2" from reading as 2.
_NUMBER = re.compile(
    r"(?<![\w.])(?:(?P<neg>[-\u2212])\s?)?(?:\\?\$\s?)?"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?![\d,])(?:\.\d+)?|\d+(?:\.\d+)?)"
)
_HASH = re.compile(r"####[ \t]*([^\n]*)")
_BOXED = re.compile(r"\\boxed\s*\{")
_ANSWER_IS = re.compile(
    r"\b(?:final\s+)?answer\s*(?:is|=|:)\s*:?(?:\s+(?:therefore|thus|then|simply|just))?([^\n]*)",
    re.IGNORECASE,
)
# The end of a statement: a sentence stop (not a decimal point) or a line break.
_STATEMENT_END = re.compile(r"(?<!\d)[.!?;](?!\d)|\.(?=\s|$)|\n")
# "not 12, it is 18" / "not 12 but 18": the negated number is not the answer.
_NEGATED = re.compile(r"^\s*not\s+[^,;]*?(?:,|;|\bbut\b)\s*(?:it\s+is|it's|rather)?", re.I)
# Markdown emphasis: `**`, `__`, and a single `*` hugging a word on one side only
# (`*18*`); `2*9` and `2 * 9` stay products.
_EMPHASIS = re.compile(r"\*\*|__|(?<![\w*])\*(?=\S)|(?<=\S)\*(?![\w*])")


@dataclass(frozen=True)
class Extraction:
    """The number read from an answer (canonical string, or None) and the rule that found it."""

    value: str | None
    rule: str  # "hash" | "boxed" | "answer_is" | "last_number" | "none"


def canonical(number: str, negative: bool = False) -> str:
    """ "1,234.50" -> "1234.5", "18.00" -> "18": one spelling per value."""
    value = Decimal(number.replace(",", ""))
    value = -value if negative else value
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def _numbers(fragment: str) -> list[str]:
    return [canonical(m["num"], bool(m["neg"])) for m in _NUMBER.finditer(fragment)]


def _statement(fragment: str) -> str:
    """The fragment up to the end of its first statement (sentence or line)."""
    end = _STATEMENT_END.search(fragment)
    return fragment[: end.start()] if end else fragment


def _number_in(fragment: str) -> str | None:
    """The number a short answer fragment states: in its first statement, after a negated
    clause, after its last "=" (a worked `2 * 9 = 18`), else its first number."""
    fragment = _NEGATED.sub("", fragment, count=1)
    statement = _statement(fragment.lstrip(" \t:"))
    if "=" in statement:
        statement = statement.rsplit("=", 1)[1]
    found = _numbers(statement)
    return found[0] if found else None


def _clean(text: str) -> str:
    # Markdown emphasis and LaTeX's "1{,}234" hide numbers from the patterns.
    return _EMPHASIS.sub("", text).replace("{,}", ",").replace("\u2212", "-")


def _boxed_contents(text: str) -> list[str]:
    """The contents of every \\boxed{...}, braces balanced (\\boxed{\\frac{1}{2}})."""
    found = []
    for match in _BOXED.finditer(text):
        depth, start = 1, match.end()
        for i in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                found.append(text[start:i])
                break
    return found


def _boxed_number(content: str) -> str | None:
    """A boxed answer is a whole statement: after its last "=", else its first number."""
    if "=" in content:
        content = content.rsplit("=", 1)[1]
    found = _numbers(content)
    return found[0] if found else None


def extract_strict(text: str) -> Extraction:
    """The number after the last `####` that has one, or none: the GSM8K format only."""
    for tail in reversed(_HASH.findall(_clean(text))):
        value = _number_in(tail)
        if value is not None:
            return Extraction(value, "hash")
    return Extraction(None, "none")


def extract_answer(text: str) -> Extraction:
    """A model's final number: `####`, \\boxed{}, "the answer is", else the last number."""
    strict = extract_strict(text)
    if strict.value is not None:
        return strict
    clean = _clean(text)
    for content in reversed(_boxed_contents(clean)):
        value = _boxed_number(content)
        if value is not None:
            return Extraction(value, "boxed")
    for tail in reversed(_ANSWER_IS.findall(clean)):
        value = _number_in(tail)
        if value is not None:
            return Extraction(value, "answer_is")
    numbers = _numbers(clean)
    if numbers:
        return Extraction(numbers[-1], "last_number")
    return Extraction(None, "none")


def is_correct(value: str | None, gold: str, tolerance: float = 1e-6) -> bool:
    """Numeric equality up to `tolerance` ("18.00" == "18"); None is never correct.

    GSM8K answers are exact integers or cents, so the tolerance only absorbs spelling
    ("18.0"); the reference's 0.01 would accept an answer a cent off.
    """
    if value is None:
        return False
    try:
        return abs(Decimal(value) - Decimal(gold)) <= Decimal(str(tolerance))
    except InvalidOperation:
        return False


def parse(row: dict) -> dict:
    """A hub row (`answer` ending `#### n`), a LEM reference row (`correct_answer`) or ours."""
    question = required_text(row, "question")
    raw = str(field(row, "answer", "correct_answer"))
    gold = raw.rsplit("####", 1)[1] if "####" in raw else raw
    numbers = _numbers(_clean(gold))
    if not numbers:
        raise ValueError(f"answer {raw[-60:]!r} has no final number")
    return {"question": question, "answer": numbers[-1]}


def prompt(item: dict) -> str:
    """The question, and the answer format that `extract_strict` reads."""
    return (
        f"{item['question']}\n\n"
        "Solve the problem step by step, then give the final answer on the last line "
        "in the form: #### <number>"
    )


# Every helper whose code decides a score: their source is part of the scorer's version.
EXTRACTOR_PARTS = (_numbers, _statement, _number_in, _clean, _boxed_contents, _boxed_number)


def shipped() -> list[Path]:
    return [shipped_dir("gsm8k") / "test.jsonl"]


BENCHMARK = Benchmark(
    name="gsm8k",
    title="GSM8K",
    fields=("question", "answer"),
    layout="question and answer (or correct_answer)",
    key_field="question",
    parse=parse,
    prompt=prompt,
    # The reference capped answers at 512 tokens and ~40% hit the cap: worked solutions
    # from 1-30B chat models run 150-600 tokens, so 512 cut real working, not only loops.
    # 1024 keeps normal solutions whole; what still hits it is a loop (finish_reason says so).
    max_tokens=1024,
    scorers=(ExactScorer("gsm8k"),),
    headline=(Headline("accuracy", "GSM8K accuracy", True),),
    better={"accuracy_strict": True},
    shipped=shipped,
    hub=HubSource("openai/gsm8k", "main", "test"),
)
