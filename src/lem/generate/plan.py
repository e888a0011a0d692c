"""The teacher requests of a run: which seeds, how many samples, which voice, which split.

One request per seed by default, in seed-file order. `n_examples` picks that many
requests round-robin over a seeded shuffle of the seeds: fewer than the seeds uses a
subset, more gives a second, third... sample of each seed (sample k uses sampling seed
`seed + k` and, with voices on, a different voice). Seeds go to train or valid by seed
id before anything is generated, so no seed is in both.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from lem.errors import LemError
from lem.generate.prompts import VOICES


@dataclass
class PlanItem:
    """One teacher request: a seed, its sample number, its voice and its split."""

    id: str
    seed_id: str
    prompt: str
    sample: int
    voice: str | None
    split: str  # "train" | "valid"
    order: int  # position of the seed in the seed file, for output order
    history: list[dict] | None = None  # a multi-turn seed's earlier turns
    kind: str | None = None  # the seed's kind, kept with the example (for counts)


def build_plan(seeds: Sequence, settings) -> list[PlanItem]:
    """The requests to make, in seed-file order, each assigned to train or valid by seed id."""
    if not seeds:
        raise LemError("generate: the seed file has no seeds")
    position = {s.id: i for i, s in enumerate(seeds)}
    order = list(seeds)
    random.Random(settings.seed).shuffle(order)
    n = settings.n_examples if settings.n_examples is not None else len(seeds)
    if n > len(seeds) and settings.temperature == 0 and not settings.voices:
        raise LemError(
            f"generate: n_examples {n} > {len(seeds)} seeds asks for several answers per seed, "
            "but temperature 0 without voices makes them identical; set --temperature > 0 "
            "or --voices"
        )
    picks = [(order[i % len(order)], i // len(order)) for i in range(n)]
    valid = _valid_seed_ids(sorted({s.id for s, _ in picks}), settings)
    items = [
        PlanItem(
            id=f"{s.id}-s{k}",
            seed_id=s.id,
            prompt=s.prompt,
            sample=k,
            voice=_voice(s.id, k, settings),
            split="valid" if s.id in valid else "train",
            order=position[s.id],
            history=s.history,
            kind=s.kind,
        )
        for s, k in picks
    ]
    return sorted(items, key=lambda it: (it.order, it.sample))


def _valid_seed_ids(seed_ids: list[str], settings) -> set[str]:
    if settings.valid_fraction == 0 or len(seed_ids) < 2:
        return set()
    n = min(max(1, round(settings.valid_fraction * len(seed_ids))), len(seed_ids) - 1)
    shuffled = list(seed_ids)
    random.Random(f"split:{settings.seed}").shuffle(shuffled)
    return set(shuffled[:n])


def _voice(seed_id: str, sample: int, settings) -> str | None:
    # A per-seed permutation: samples of one seed get different voices, and an item's
    # voice does not depend on how many items the plan has (resume stays stable).
    if not settings.voices:
        return None
    names = sorted(VOICES)
    random.Random(f"voice:{settings.voice_seed}:{seed_id}").shuffle(names)
    return names[sample % len(names)]
