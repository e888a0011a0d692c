"""`lem bench` on several processes: each rank answers a share of every pair.

A pair's missing items are shared out across the ranks: every N-th item, or for a
log-likelihood benchmark every N-th pack of choices as a single process packs them, so
each number is the one a single process computes (a pack's numbers depend on its
company, to the last digit). Each rank appends to its own part,
OUT/.parts/<benchmark>_<model>.rank<k>.jsonl, on its own disk, and a re-run after a kill
continues from it. When every rank is done, the records travel to rank 0 over the group
(JSON bytes; no shared disk needed), which appends them to the results file in item
order and writes the manifest; then each rank removes its part.
"""

from __future__ import annotations

import io
import sys
from dataclasses import replace
from typing import Any, TextIO

from lem.bench.runner import PARTS, BenchSettings, ModelSpec, Pair, answer_pair
from lem.distributed import agree, barrier, broadcast_json, gather_json
from lem.errors import LemError
from lem.store import JsonlAppender, read_done, sha256_json


def share_plans(plans: list[tuple[ModelSpec, list[Pair]]], g: Any) -> None:
    """Give every rank rank 0's missing items of each pair; a rank whose model files, data
    or settings make another config or other items than rank 0's stops every rank."""
    pairs = [p for _, ps in plans for p in ps]
    shared = broadcast_json(
        g,
        {
            p.key: {
                "config": p.config_hash,
                "items": sha256_json(p.selection.items),
                "todo": [item["id"] for item in p.todo],
            }
            for p in pairs
        },
    )

    def check() -> None:
        for p in pairs:
            theirs = shared[p.key]
            what = "generation config" if theirs["config"] != p.config_hash else None
            if theirs["items"] != sha256_json(p.selection.items):
                what = "items"
            if what is not None:
                raise LemError(
                    f"{p.key}: rank {g.rank()} has other {what} than rank 0; every machine "
                    "needs the same model files, data, settings and lem version"
                )
            if g.rank() > 0:  # its pairs are the missing items only
                todo = set(theirs["todo"])
                items = [item for item in p.selection.items if item["id"] in todo]
                p.selection = replace(p.selection, items=items)

    agree(g, check)


def answer_shared(
    pair: Pair, loaded: Any, settings: BenchSettings, stream: TextIO | None, g: Any
) -> int:
    """This rank's share of a pair's missing items, kept in its part file; then every
    rank's records go to rank 0, which appends them to the results file in item order.
    Returns the records merged (on rank 0)."""
    if not pair.todo:
        return 0
    primary = g.rank() == 0
    shard = agree(g, lambda: shard_pair(pair, loaded, settings, g.rank(), g.size()))
    if primary:
        note = f"bench: {pair.key}: {len(pair.todo)} to answer over {g.size()} processes"
        print(f"{note}; rank 0 answers {len(shard.selection.items)}", file=stream or sys.stderr)
    answer_pair(shard, loaded, settings, stream if primary else io.StringIO())
    parts = gather_json(g, [shard.done[item["id"]] for item in shard.selection.items])
    merged = merge(pair, [r for part in parts for r in part]) if primary else 0
    barrier(g)  # rank 0 has every record on disk: the parts can go
    shard.path.unlink(missing_ok=True)
    return merged


def shard_items(pair: Pair, tokenizer: Any, batch_size: int, rank: int, world: int) -> list[dict]:
    """A rank's share of a pair's missing items: every `world`-th one, or for a
    log-likelihood benchmark every `world`-th pack of choices as one process packs them
    (a pack's numbers depend on its company, to the last digit)."""
    todo = pair.todo
    if pair.bench.answer != "loglik":
        return todo[rank::world]
    from lem.loglik import Request, encode_request, plan_packs

    choices = [pair.bench.choices(item) for item in todo]
    encoded = [encode_request(tokenizer, Request(c.context, c.continuations)) for c in choices]
    packs = plan_packs(encoded, batch_size)[rank::world]
    return [todo[i] for i in sorted(i for pack in packs for i in pack)]


def shard_pair(pair: Pair, loaded: Any, settings: BenchSettings, rank: int, world: int) -> Pair:
    """A rank's share of a pair, as a pair of its own whose results file is the rank's
    part, with what an earlier (killed) run of the same config left in it."""
    mine = shard_items(pair, loaded.tokenizer, settings.batch_size, rank, world)
    part = settings.out / PARTS / f"{pair.key}.rank{rank}.jsonl"
    done = read_done(part)
    if any(r.get("gen_config") != pair.config_hash for r in done.values()):
        part.unlink()
        done = {}
    ids = {item["id"] for item in mine}
    return Pair(
        pair.bench,
        pair.spec,
        replace(pair.selection, items=mine),
        pair.config,
        pair.config_hash,
        part,
        {i: r for i, r in done.items() if i in ids},
        together=pair.todo,
    )


def merge(pair: Pair, records: list[dict]) -> int:
    """Append the records a pair is missing to its results file, in item order."""
    order = {item["id"]: n for n, item in enumerate(pair.selection.items)}
    new = {r["id"]: r for r in records if r["id"] in order and r["id"] not in pair.done}
    with JsonlAppender(pair.target) as out:
        for i in sorted(new, key=order.__getitem__):
            out.write(new[i])
            pair.done[i] = new[i]
    return len(new)
