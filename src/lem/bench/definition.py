"""A benchmark is one definition: its data, how an item is asked, how answers are scored,
and which metrics head the report.

`lem bench` reads `answer` ("generate": a chat answer per item; "loglik": the summed
log-probability of each of the item's choices), `prompt` or `choices` and `max_tokens`;
`lem score` runs its `scorers`; `lem report` takes each metric's label and direction, and
the headline columns, from `headline`. Adding a benchmark is one module under
`lem/bench/` that builds a `Benchmark`, plus its tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lem.bench.scorers import Scorer


@dataclass(frozen=True)
class HubSource:
    """Where a benchmark lives on the Hugging Face hub."""

    id: str
    config: str | None
    split: str
    gated: bool = False

    def describe(self) -> str:
        return f"{self.id}" + (f" ({self.config})" if self.config else "") + f" [{self.split}]"


@dataclass(frozen=True)
class Choices:
    """A log-likelihood item: one context, its continuations, and which of them are true.

    `best` is the index of the single best true continuation (TruthfulQA's MC1 compares
    it with the false ones; MC2 uses every true one).
    """

    context: str
    continuations: tuple[str, ...]
    true: tuple[bool, ...]
    best: int = 0
    mc1: tuple[bool, ...] | None = None  # the continuations MC1 compares (None: all)


@dataclass(frozen=True)
class Headline:
    """A metric as the report shows it: label, and which direction is better.

    `subset` picks the items the figure is over (None: all); `higher_is_better` is None
    where neither direction is better (a distribution, say).
    """

    metric: str
    label: str
    higher_is_better: bool | None
    subset: str | None = None
    note: str = ""  # one line a reader needs to read the figure (e.g. what a refusal is)


@dataclass(frozen=True)
class Benchmark:
    """One benchmark; see the module docstring."""

    name: str
    title: str
    # Data: raw rows (the shipped files, a --data file in the authors' layout, the hub)
    # become items with an `id` and the fields below.
    fields: tuple[str, ...]
    layout: str  # the fields a data row needs, for error messages
    key_field: str  # the text a derived id is hashed from
    parse: Callable[[dict], dict]  # raw row -> normalised fields; MissingField / ValueError
    # How it is answered.
    answer: str = "generate"  # "generate" | "loglik"
    prompt: Callable[[dict], str | list[dict]] | None = None  # generate: user text or chat
    choices: Callable[[dict], Choices] | None = None  # loglik
    max_tokens: int = 512  # generate: the answer cap (a loglik benchmark generates nothing)
    # How it is scored and reported.
    scorers: tuple[Scorer, ...] = ()
    headline: tuple[Headline, ...] = ()
    # Where its data comes from when no --data file is given.
    shipped: Callable[[], list[Path]] | None = None  # files lem ships (read in order)
    read_shipped: Callable[[list[Path]], list[tuple[str, dict]]] | None = None
    hub: HubSource | None = None
    exclude: Callable[[dict], str | None] | None = None  # why an item is left out, or None
    full_max_tokens: int | None = None  # with --full-answers (for a judge); None: max_tokens
    # Which direction is better for metrics that are not in `headline` ("*": any other).
    better: dict[str, bool | None] = field(default_factory=dict)
    # (classifier metric, judge metric) pairs labelling the same thing: the report shows
    # how far the two agree on the same answers.
    agreement: tuple[tuple[str, str], ...] = ()
    prompt_version: int = 1  # bump when `prompt` or `choices` wording changes
    notes: tuple[str, ...] = field(default_factory=tuple)  # for `lem bench --list`

    def load(self, data: Path | None = None, limit: int | None = None, seed: int = 0) -> list[dict]:
        """The items of a run: from `data`, else shipped data, else the hub; a seeded subset."""
        from lem.bench.data import load_items

        return load_items(self, data, limit, seed).items

    def headline_for(self, metric: str, subset: str | None) -> Headline | None:
        """The headline spec of one metric over one subset, if the benchmark has one."""
        for h in self.headline:
            if h.metric == metric and h.subset == subset:
                return h
        return None

    def direction(self, metric: str, subset: str | None) -> bool | None:
        """True when higher is better, False when lower is, None when neither."""
        spec = self.headline_for(metric, subset)
        if spec is not None:
            return spec.higher_is_better
        if metric in self.better:
            return self.better[metric]
        same = {h.higher_is_better for h in self.headline if h.metric == metric}
        if len(same) == 1 and subset is None:
            return same.pop()
        return self.better.get("*")

    def is_judged(self) -> bool:
        return any(s.needs_judge for s in self.scorers)


def shipped_dir(name: str) -> Path:
    """The folder of a benchmark's shipped data inside the package."""
    from importlib import resources

    return Path(str(resources.files("lem") / "data" / "benchmarks" / name))


def scalar(value: Any) -> Any:
    """A value as plain JSON (numpy scalars from Parquet rows become Python numbers)."""
    return value.item() if hasattr(value, "item") else value
