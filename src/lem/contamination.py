"""Seed prompts that twin a benchmark item lem ships: copies, edits and paraphrases.

A seed trained on (or evaluated with) a near-copy of a benchmark question inflates that
benchmark's score. Word n-gram overlap (`lem.seeds.ngram_overlap`) finds copies and edits;
the cosine of all-MiniLM-L6-v2 sentence embeddings (`lem.embed`) finds rewordings, such as
a seed "Did Einstein really fail maths at school?" against TruthfulQA's "What subjects did
Einstein flunk in school?" (0.68; n-gram overlap 0.17). A pair is a twin when its cosine
reaches COSINE_TWIN, or its n-gram overlap reaches NGRAM_TWIN and the cosine agrees loosely.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from lem.errors import LemError
from lem.seeds import NEAR_DUPLICATE, near_duplicates, ngram_overlap

# The benchmark files whose items seeds must not twin: (source, file, id column, text column).
# An id column of None numbers the data rows from 1. StrongREJECT's small set is a subset of
# the full one and HarmBench's contextual behaviours repeat a text, so texts are deduplicated.
BENCH_FILES = (
    ("truthfulqa", "truthfulqa/TruthfulQA.csv", None, "Question"),
    ("xstest", "xstest/xstest_prompts.csv", "id", "prompt"),
    ("harmbench", "harmbench/harmbench_behaviors_text_val.csv", "BehaviorID", "Behavior"),
    ("harmbench", "harmbench/harmbench_behaviors_text_test.csv", "BehaviorID", "Behavior"),
    ("strongreject", "strongreject/strongreject_dataset.csv", None, "forbidden_prompt"),
    ("strongreject", "strongreject/strongreject_small_dataset.csv", None, "forbidden_prompt"),
)

# Calibrated on evidence (all-MiniLM-L6-v2 through lem.embed, whole prompts): the ten seeds
# replaced on 2026-11-30 as benchmark twins (git log -p -- src/lem/data/seeds/), each paired
# with its twin, against the 340 current seeds' nearest benchmark items.
# - Cosine of the known twins: E073 0.87, T193 0.82, T115 0.68 (0.71 with a second TruthfulQA
#   item), T120 0.70, T177 0.64, T056 0.64, T214 0.61; then T183 0.55, T179 0.51, T150 0.48.
# - Current seeds' nearest item: median 0.44, 90th percentile 0.57, 95th 0.63, max 0.82;
#   real twins and mere neighbours mix from about 0.55 up (E079, a note to a noisy
#   neighbour, scores 0.63 with XSTest's "break into my neighbour's house").
# No cut separates twins from neighbours. 0.58 catches the seven known twins at 0.61 and up
# with a margin of 0.03 and flags 32 current seeds for review (tests/test_contamination.py
# keeps the pairs reviewed as different). T150 (0.48) would need a cut that flags half of
# all seeds: a twin by topic, not wording, is for a reviewer to catch.
COSINE_TWIN = 0.58
# N-gram containment against short, templated prompts is noisy on its own: 52 current pairs
# reach 0.4, nearly all through XSTest's "What's the best way to ..." frame (cosine < 0.45).
# An n-gram hit counts when the embedding agrees at least loosely: that adds T183 ("butcher
# a whole chicken" ~ "butcher a human", 0.67 / 0.55) and T179 ("shoot a sharp photo" ~
# "shoot a good photo", 0.50 / 0.51), and flags two current pairs.
NGRAM_TWIN = NEAR_DUPLICATE
NGRAM_COSINE_FLOOR = 0.45


class BenchItem(NamedTuple):
    """One benchmark prompt: its source benchmark, its id there, its text."""

    source: str
    id: str
    text: str


class Twin(NamedTuple):
    """A seed and a benchmark item too alike: either score reached its threshold."""

    seed_id: str
    source: str
    bench_text: str
    ngram: float
    cosine: float


def bench_texts(root: str | Path) -> list[BenchItem]:
    """The shipped benchmark prompts under `root` (TruthfulQA, XSTest, HarmBench, StrongREJECT).

    Each text appears once per source; every file named in BENCH_FILES must exist.
    """
    root = Path(root)
    items: list[BenchItem] = []
    seen: set[tuple[str, str]] = set()
    for source, name, id_column, text_column in BENCH_FILES:
        for row_number, row in enumerate(_read_csv(root / name, (id_column, text_column)), 1):
            text = row[text_column].strip()
            if text and (source, text) not in seen:
                seen.add((source, text))
                items.append(
                    BenchItem(source, row[id_column] if id_column else str(row_number), text)
                )
    return items


def _read_csv(path: Path, columns: Iterable[str | None]) -> list[dict[str, str]]:
    if not path.is_file():
        raise LemError(f"{path}: benchmark file not found; pass the folder that holds the data")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in columns if c is not None and c not in (reader.fieldnames or [])]
        if missing:
            raise LemError(f"{path}: missing column(s) {', '.join(missing)}")
        return list(reader)


def similarities(
    seed_texts: Sequence[str],
    bench: Sequence[str],
    embedder: Callable[[Sequence[str]], np.ndarray] | None = None,
) -> np.ndarray:
    """Cosine similarity of every seed with every benchmark text: (len(seeds), len(bench))."""
    if embedder is None:
        from lem.embed import embed as embedder
    return embedder(list(seed_texts)) @ embedder(list(bench)).T


def twins(
    seeds_texts: Sequence[tuple[str, str]],
    bench_texts: Sequence[BenchItem],
    ngram_threshold: float = NGRAM_TWIN,
    cosine_threshold: float = COSINE_TWIN,
    *,
    ngram_cosine_floor: float = NGRAM_COSINE_FLOOR,
    cosines: np.ndarray | None = None,
) -> list[Twin]:
    """Seed/benchmark pairs too alike, sorted by cosine, highest first.

    A pair is flagged when its cosine reaches `cosine_threshold`, or its n-gram overlap
    reaches `ngram_threshold` with a cosine of at least `ngram_cosine_floor`.
    `seeds_texts` are (seed id, text) pairs (`Seed.text()` for a multi-turn seed). Pass
    `cosines` (from `similarities`) to reuse embeddings.
    """
    if cosines is None:
        cosines = similarities([t for _, t in seeds_texts], [b.text for b in bench_texts])
    flagged = {(int(i), int(j)) for i, j in np.argwhere(cosines >= cosine_threshold)}
    close = near_duplicates(
        [(str(i), text) for i, (_, text) in enumerate(seeds_texts)],
        [(str(j), b.text) for j, b in enumerate(bench_texts)],
        threshold=ngram_threshold,
    )
    flagged |= {
        (int(i), int(j)) for i, j, _ in close if cosines[int(i), int(j)] >= ngram_cosine_floor
    }
    found = [
        Twin(
            seeds_texts[i][0],
            bench_texts[j].source,
            bench_texts[j].text,
            ngram_overlap(seeds_texts[i][1], bench_texts[j].text),
            float(cosines[i, j]),
        )
        for i, j in flagged
    ]
    return sorted(found, key=lambda t: (-t.cosine, -t.ngram, t.seed_id, t.bench_text))


def describe(found: Iterable[Twin], prompts: dict[str, str]) -> str:
    """One readable block per twin: ids, scores, the seed's prompt and the benchmark's text."""
    return "\n".join(
        f"{t.seed_id} ~ {t.source} (cosine {t.cosine:.2f}, n-gram {t.ngram:.2f})\n"
        f"    seed:  {prompts.get(t.seed_id, '?')}\n    bench: {t.bench_text}"
        for t in found
    )
