"""Pin a benchmark subset: write the ids that `lem bench --limit N --seed S` selects.

Usage: python benchmarks/pin.py BENCHMARK [--data FILE] [--limit 50] [--seed 0]
Writes benchmarks/subsets/<benchmark>-<limit>-seed<seed>.json. Without --data the
benchmark's default source is read (the data shipped with lem, else the hub through
`datasets`), exactly as `lem bench` reads it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lem.bench import get_benchmark, load_items

SUBSETS = Path(__file__).parent / "subsets"


def subset_record(name: str, data: Path | None, limit: int, seed: int) -> dict:
    """What a pinned subset file holds: how it was drawn, from what, and the ids."""
    bench = get_benchmark(name)
    selection = load_items(bench, data, limit, seed)
    return {
        "benchmark": name,
        "limit": limit,
        "seed": seed,
        "source": selection.source,  # shipped data is named by file, not by this machine's path
        "source_sha256": selection.source_sha256,
        "source_items": selection.total,
        "command": f"lem bench -b {name} --limit {limit} --seed {seed}",
        "ids": [item["id"] for item in selection.items],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benchmark")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    record = subset_record(args.benchmark, args.data, args.limit, args.seed)
    path = SUBSETS / f"{args.benchmark}-{args.limit}-seed{args.seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"{path}: {len(record['ids'])} of {record['source_items']} ids")


if __name__ == "__main__":
    main()
