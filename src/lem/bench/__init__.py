"""The benchmark registry: one module per benchmark, each a whole definition (data, prompt
or choices, scorers, headline metrics; see `lem.bench.definition`).

`get_benchmark(name)` returns a `Benchmark`; `lem.bench.runner.run_bench` answers it,
`lem.score` scores it, `lem.report` summarises it.
"""

from __future__ import annotations

from lem.bench import (
    do_not_answer,
    ethics,
    gsm8k,
    harmbench,
    strongreject,
    toxigen,
    toxigen_cls,
    truthfulqa,
    truthfulqa_mc,
    xstest,
)
from lem.bench.data import Selection, item_id, load_items
from lem.bench.definition import Benchmark, Choices, Headline, HubSource
from lem.errors import LemError

BENCHMARKS: dict[str, Benchmark] = {
    m.BENCHMARK.name: m.BENCHMARK
    for m in (
        gsm8k,
        truthfulqa_mc,
        truthfulqa,
        toxigen_cls,
        toxigen,
        xstest,
        harmbench,
        strongreject,
        do_not_answer,
        ethics,
    )
}


def get_benchmark(name: str) -> Benchmark:
    """The benchmark called `name`; a LemError listing the known names otherwise."""
    if name not in BENCHMARKS:
        raise LemError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "Choices",
    "Headline",
    "HubSource",
    "Selection",
    "get_benchmark",
    "item_id",
    "load_items",
]
