"""Benchmark items: reading shipped files, data files or the hub, and seeded subsets.

Every benchmark turns raw rows (the files shipped with lem, a JSONL, CSV or Parquet file
in the benchmark authors' own layout, or the hub split) into items with an `id` and its
own normalised fields. Ids come from
the row's `id` when it has one; otherwise they are `<benchmark>-<12 hex of the SHA-256
of the question or prompt text>`, so the same question has the same id in the hub split,
in a LEM reference file or in a hand-made subset, and results join to items by id
whichever file they were made from.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import socket
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lem.errors import LemError
from lem.store import iter_jsonl, read_text, sha256_json

if TYPE_CHECKING:
    from lem.bench.definition import Benchmark

FORMATS = (".jsonl", ".csv", ".parquet")
HUB = "hub"  # --data NAME=hub: the benchmark's hub dataset instead of the shipped data


class MissingField(Exception):
    """Raised by a benchmark's row parser when the row lacks a field it needs."""


@dataclass(frozen=True)
class Selection:
    """The items chosen for a run, and where they came from."""

    items: list[dict]
    source: str  # a file or directory path, "shipped: <files>", or a hub id
    source_sha256: str | None  # of the data file(s); None for hub data
    total: int  # items in the source before the subset was drawn
    excluded: dict[str, int] = dataclass_field(default_factory=dict)  # reason -> items left out


def item_id(benchmark: str, text: str) -> str:
    """The id of an item whose data row has none: stable across files and row order."""
    return f"{benchmark}-{hashlib.sha256(text.strip().encode()).hexdigest()[:12]}"


def field(row: dict, *names: str) -> Any:
    """The value of the first of `names` present (and not null) in `row`."""
    for name in names:
        if row.get(name) is not None:
            return row[name]
    raise MissingField(" or ".join(names))


def required_text(row: dict, *names: str) -> str:
    """A required, non-empty text field."""
    value = field(row, *names)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"field {names[0]} must be non-empty text, got {value!r}")
    return value


def _key(name: str) -> str:
    # CSV headers such as "Best Answer" (TruthfulQA's own CSV) mean best_answer.
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def read_rows(path: Path) -> list[tuple[str, dict]]:
    """Rows of a JSONL, CSV or Parquet file, each with its location ("FILE:LINE")."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        kinds = ", ".join(FORMATS)
        raise LemError(f"{path}: unknown data file type {suffix or '(none)'}; use {kinds}")
    if not path.is_file():
        raise LemError(f"{path}: data file not found")
    if suffix == ".jsonl":
        return [(f"{path}:{n}", row) for n, row in iter_jsonl(path)]
    if suffix == ".csv":
        return _read_csv(path)
    return _read_parquet(path)


def _read_csv(path: Path) -> list[tuple[str, dict]]:
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    rows = []
    try:
        for row in reader:
            if None in row:  # more cells than headers
                raise LemError(f"{path}:{reader.line_num}: more cells than header columns")
            rows.append((f"{path}:{reader.line_num}", {_key(k): v for k, v in row.items()}))
    except csv.Error as e:
        raise LemError(f"{path}:{reader.line_num}: not valid CSV ({e})")
    if reader.fieldnames is None:
        raise LemError(f"{path}: empty CSV (no header row)")
    return rows


def _read_parquet(path: Path) -> list[tuple[str, dict]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise LemError(f"{path}: not a readable Parquet file ({str(e).splitlines()[0]})")
    return [
        (f"{path} row {n}", {_key(k): v for k, v in row.items()})
        for n, row in enumerate(table.to_pylist(), 1)
    ]


HUB_HOST = ("huggingface.co", 443)


def hub_offline() -> bool:
    """True when the hub cannot be reached (checked once, in about a second at most).

    The hub libraries retry a dead connection for tens of seconds, printing a warning
    each time; lem checks first and, offline, tells them to use their cache only.
    """
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return True
    try:
        with socket.create_connection(HUB_HOST, timeout=1.5):
            return False
    except OSError:
        for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
            os.environ[name] = "1"
        return True


def hub_rows(bench: Benchmark) -> list[tuple[str, dict]]:
    """The benchmark's hub split through `datasets` (cached by it); one-line errors offline."""
    hub = bench.hub
    if hub is None:
        raise LemError(f"{bench.name}: no shipped data and no hub dataset; pass --data FILE")
    token = _hub_token()
    if hub.gated and token is None:
        raise LemError(
            f"{bench.name}: the hub dataset {hub.id} is gated: accept its terms at "
            f"https://huggingface.co/datasets/{hub.id} and set HF_TOKEN, or pass --data FILE"
        )
    offline = hub_offline()
    try:
        import datasets

        datasets.logging.set_verbosity_error()
        rows = datasets.load_dataset(hub.id, hub.config, split=hub.split, token=token)
    except Exception as e:  # network, auth and cache errors come in many types: report them
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        where = "the hub is not reachable and it is not cached" if offline else reason[:200]
        raise LemError(
            f"{bench.name}: could not load {hub.describe()} ({where}); "
            f"pass --data FILE (JSONL, CSV or Parquet with {bench.layout})"
        ) from None
    return [
        (f"{hub.id} row {n}", {_key(k): v for k, v in r.items()}) for n, r in enumerate(rows, 1)
    ]


def _hub_token() -> str | None:
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if token:
        return token
    from huggingface_hub import get_token  # a token saved by `hf auth login`

    return get_token()


def to_items(bench: Benchmark, rows: list[tuple[str, dict]]) -> list[dict]:
    """Normalise rows into items with ids; one-line errors naming the file and line."""
    items: list[dict] = []
    seen: dict[str, str] = {}
    for where, row in rows:
        try:
            item = bench.parse(row)
        except MissingField as e:
            raise LemError(f"{where}: missing field {e}; {bench.name} rows need {bench.layout}")
        except (ValueError, TypeError) as e:
            raise LemError(f"{where}: {e}")
        given = row.get("id")
        if given is not None and str(given).strip():
            item_key = str(given).strip()
            if item_key in seen:
                raise LemError(f"{where}: duplicate id {item_key!r} (first at {seen[item_key]})")
        else:
            item_key = item_id(bench.name, item[bench.key_field])
            # The same text twice without ids: number the repeats so every item keeps its row.
            base, n = item_key, 1
            while item_key in seen:
                n += 1
                item_key = f"{base}-{n}"
        seen[item_key] = where
        items.append({"id": item_key, **item})
    return items


def select(items: list[dict], limit: int | None, seed: int) -> list[dict]:
    """A seeded random subset of `limit` items, kept in source order.

    Each item's rank is the SHA-256 of "seed:id", so a subset depends only on the seed
    and the ids (not on row order or the Python version), and for one seed the first 50
    are among the first 100.
    """
    if limit is not None and limit < 1:
        raise LemError(f"--limit must be at least 1, got {limit}")
    if limit is None or limit >= len(items):
        return list(items)

    def rank(item: dict) -> str:
        return hashlib.sha256(f"{seed}:{item['id']}".encode()).hexdigest()

    chosen = {item["id"] for item in sorted(items, key=rank)[:limit]}
    return [item for item in items if item["id"] in chosen]


def read_files(bench: Benchmark, paths: list[Path]) -> list[tuple[str, dict]]:
    """Rows of the given files (or a directory, for benchmarks whose reader takes one)."""
    if bench.read_shipped is not None:
        return bench.read_shipped(paths)
    rows = []
    for path in paths:
        if Path(path).is_dir():
            raise LemError(f"{path}: is a directory; {bench.name} reads a data file")
        rows += read_rows(path)
    return rows


def files_sha256(paths: list[Path]) -> str:
    """One file's SHA-256, or a hash over several files' names and hashes."""
    from lem.store import sha256_tree

    if len(paths) == 1:
        return sha256_tree(paths[0])
    return sha256_json({Path(p).name: sha256_tree(p) for p in paths})


def load_items(
    bench: Benchmark, data: Path | None, limit: int | None = None, seed: int = 0
) -> Selection:
    """The items of a run and their source: a data file (or `hub`: the benchmark's hub
    dataset), else the data shipped with lem, else the hub."""
    if data is not None and str(data) == HUB:
        rows, source, digest = hub_rows(bench), bench.hub.describe() if bench.hub else HUB, None
    elif data is not None:
        data = Path(data)
        if not data.exists():
            raise LemError(f"{data}: data file not found")
        rows, source, digest = read_files(bench, [data]), str(data), files_sha256([data])
    elif bench.shipped is not None:
        paths = bench.shipped()
        names = ", ".join(p.name for p in paths)
        rows, source, digest = read_files(bench, paths), f"shipped: {names}", files_sha256(paths)
    else:
        rows, source, digest = hub_rows(bench), bench.hub.describe(), None
    items = to_items(bench, rows)
    excluded: dict[str, int] = {}
    if bench.exclude is not None:
        kept = []
        for item in items:
            why = bench.exclude(item)
            if why is None:
                kept.append(item)
            else:
                excluded[why] = excluded.get(why, 0) + 1
        items = kept
    if not items:
        raise LemError(f"{source}: no {bench.name} items in it")
    return Selection(select(items, limit, seed), source, digest, len(items), excluded)
