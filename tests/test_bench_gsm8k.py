"""The GSM8K answer extractor on answers written the way models write them."""

import pytest

from lem.bench.gsm8k import canonical, extract_answer, extract_strict, is_correct, parse

# (model answer, extracted value, rule that fired)
ANSWERS = [
    ("Natalia sold 48 + 24 = 72 clips.\n#### 72", "72", "hash"),
    ("So the total is 1,234.\n#### 1,234", "1234", "hash"),
    ("#### $18.", "18", "hash"),
    ("Step 1: 4 * 5 = 20\n####20", "20", "hash"),
    ("The cost is 3 * 6 = 18 dollars.\n\n\\[\n\\boxed{18}\n\\]", "18", "boxed"),
    ("Adding up, we get $\\boxed{\\$1,234.50}$.", "1234.5", "boxed"),
    ("\\boxed{18 \\text{ apples}} is what she has left", "18", "boxed"),
    ("So \\boxed{2 \\times 9 = 18}.", "18", "boxed"),
    ("First \\boxed{5}, no wait, \\boxed{7}.", "7", "boxed"),
    ("She pays 29 dollars in total. The final answer is $29.00.", "29", "answer_is"),
    ("Final Answer: 42", "42", "answer_is"),
    ("**Final Answer:** 1,500 people", "1500", "answer_is"),
    ("The answer is: **15**.", "15", "answer_is"),
    ("3 + 4 = 7 so the answer is 3 + 4 = 7 cookies", "7", "answer_is"),
    ("The answer is 12 (4 packs of 3), costing $1.", "12", "answer_is"),
    ("Janet has 16 eggs, eats 3 and bakes with 4, so she sells 9 for $18.", "18", "last_number"),
    ("He ends up with 1,234.50 dollars.", "1234.5", "last_number"),
    ("The temperature dropped to -5.", "-5", "last_number"),
    ("The balance is \u221240 dollars", "-40", "last_number"),
    ("After 10-3 days she had 7 left.", "7", "last_number"),
    ("The ratio works out to 0.25.", "0.25", "last_number"),
    ("She earned $1,000,000 that year", "1000000", "last_number"),
    ("I do not know how to solve this.", None, "none"),
    ("", None, "none"),
]


@pytest.mark.parametrize("text,value,rule", ANSWERS)
def test_extract_answer(text, value, rule):
    got = extract_answer(text)
    assert (got.value, got.rule) == (value, rule)


@pytest.mark.parametrize(
    "text,value",
    [
        ("so 9 * 2 = 18\n#### 18", "18"),
        ("#### 1,234.50", "1234.5"),
        ("#### -3", "-3"),
        ("\\boxed{18}", None),  # strict reads only the GSM8K format
        ("The answer is 18.", None),
        ("####\nThe answer is 18", None),  # a marker with no number on its line
    ],
)
def test_extract_strict(text, value):
    got = extract_strict(text)
    assert got.value == value
    assert got.rule == ("hash" if value is not None else "none")


def test_last_hash_line_with_a_number_wins():
    assert extract_answer("#### 5\nOops, recheck.\n#### 6").value == "6"
    assert extract_answer("#### 5\n####").value == "5"


@pytest.mark.parametrize(
    "value,gold,expected",
    [
        ("18", "18", True),
        ("18.00", "18", True),
        ("1234.5", "1234.50", True),
        ("-5", "-5", True),
        ("17", "18", False),
        ("18.01", "18", False),  # a cent off is wrong (the reference's 0.01 would accept it)
        (None, "18", False),
        ("-5", "5", False),
    ],
)
def test_is_correct(value, gold, expected):
    assert is_correct(value, gold) is expected


def test_canonical_spelling():
    assert canonical("1,234.50") == "1234.5"
    assert canonical("18.00") == "18"
    assert canonical("5", negative=True) == "-5"
    assert canonical("0.250") == "0.25"


def test_parse_hub_and_reference_rows():
    hub = {"question": "How many?", "answer": "3 * 400 = 1,200 pages\n#### 1,200"}
    assert parse(hub) == {"question": "How many?", "answer": "1200"}
    assert parse({"question": "How many?", "correct_answer": 30})["answer"] == "30"
    assert parse({"question": "How many?", "correct_answer": "$7.50"})["answer"] == "7.5"
    with pytest.raises(ValueError, match="no final number"):
        parse({"question": "How many?", "answer": "#### lots"})
