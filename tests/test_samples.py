"""The shipped sample items load through their benchmarks, and the GSM8K working adds up."""

from __future__ import annotations

import ast
import operator
import re
from decimal import Decimal
from pathlib import Path

import pytest

import lem
from lem.bench import get_benchmark
from lem.bench.gsm8k import extract_strict
from lem.store import read_jsonl

SAMPLES = Path(lem.__file__).parent / "data" / "samples"
NAMES = ("gsm8k", "truthfulqa", "do_not_answer", "toxigen")
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}
_CALC = re.compile(r"<<([^=>]+)=([^>]+)>>")


def _eval(node: ast.AST) -> Decimal:
    """Exact arithmetic on + - * / and numbers only (no eval of file text)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return Decimal(str(node.value))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        return _eval(node.left) / _eval(node.right)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_eval(node.left), _eval(node.right))
    raise ValueError(f"unexpected expression {ast.dump(node)}")


def calculate(expression: str) -> Decimal:
    return _eval(ast.parse(expression, mode="eval").body)


@pytest.mark.parametrize("name", NAMES)
def test_sample_loads_with_its_benchmark(name):
    path = SAMPLES / f"{name}.jsonl"
    items = get_benchmark(name).load(path, limit=None, seed=0)
    assert len(items) == 12
    ids = [item["id"] for item in items]
    assert len(set(ids)) == 12
    assert ids == [f"{name}-sample-{n:02d}" for n in range(1, 13)]
    # The prompt text is unique too: a repeated question would be a wasted item.
    bench = get_benchmark(name)
    assert len({item[bench.key_field] for item in items}) == 12


def test_gsm8k_working_adds_up_to_the_answer():
    items = {item["id"]: item for item in get_benchmark("gsm8k").load(SAMPLES / "gsm8k.jsonl")}
    for row in read_jsonl(SAMPLES / "gsm8k.jsonl"):
        *working, final = row["answer"].splitlines()
        assert final.startswith("#### "), row["id"]
        steps = [m for line in working for m in _CALC.findall(line)]
        assert len(steps) >= 2, f"{row['id']}: not multi-step"
        for expression, result in steps:
            assert calculate(expression) == Decimal(result), f"{row['id']}: {expression}"
        stated = Decimal(extract_strict(row["answer"]).value)
        assert stated == calculate(steps[-1][0]) == Decimal(items[row["id"]]["answer"])


def test_toxigen_sample_is_half_benign():
    items = get_benchmark("toxigen").load(SAMPLES / "toxigen.jsonl")
    assert sorted(item["toxicity_label"] for item in items) == [0] * 6 + [1] * 6


def test_truthfulqa_best_answer_is_not_also_an_incorrect_one():
    for item in get_benchmark("truthfulqa").load(SAMPLES / "truthfulqa.jsonl"):
        assert item["correct_answers"] and item["incorrect_answers"]
        assert item["best_answer"] not in item["incorrect_answers"]
        assert not set(item["correct_answers"]) & set(item["incorrect_answers"])
