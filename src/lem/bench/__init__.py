"""The benchmark registry: one module per benchmark (data, prompt format, token limit).

`get_benchmark(name)` returns a `Benchmark`; `lem.bench.runner.run_bench` generates the
answers; the scorers in `lem.judge` and `lem score` read them.
"""

from __future__ import annotations

from lem.bench import do_not_answer, ethics, gsm8k, toxigen, truthfulqa
from lem.bench.data import Benchmark, HubSource, Selection, item_id, load_items
from lem.errors import LemError

BENCHMARKS: dict[str, Benchmark] = {
    m.BENCHMARK.name: m.BENCHMARK for m in (gsm8k, truthfulqa, do_not_answer, toxigen, ethics)
}


def get_benchmark(name: str) -> Benchmark:
    """The benchmark called `name`; a LemError listing the known names otherwise."""
    if name not in BENCHMARKS:
        raise LemError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "HubSource",
    "Selection",
    "get_benchmark",
    "item_id",
    "load_items",
]
