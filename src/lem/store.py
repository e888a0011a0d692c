"""Files every stage shares: hashes, JSONL read/append with resume, manifests.

Appends are durable (flush + fsync per line) and a torn last line left by a killed
process is cut off before the next append, so a re-run never sees half a record.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lem.errors import LemError

MANIFEST = "manifest.json"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_json(obj: Any) -> str:
    """SHA-256 of a value's canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return sha256_bytes(text.encode())


def sha256_tree(path: str | Path) -> str:
    """SHA-256 over a directory's files (relative names and contents), or of a file."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(f.relative_to(path)).encode() + b"\0")
        digest.update(sha256_file(f).encode())
    return digest.hexdigest()


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line; one-line LemError on bad input."""
    path = Path(path)
    if not path.is_file():
        raise LemError(f"{path}: file not found")
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise LemError(f"{path}:{number}: not valid JSON ({e.msg}); fix or remove the line")
            if not isinstance(obj, dict):
                raise LemError(f"{path}:{number}: expected a JSON object, got {type(obj).__name__}")
            yield number, obj


def read_jsonl(path: str | Path, required: Iterable[str] = ()) -> list[dict]:
    """Read a JSONL file of objects, checking that each has the `required` fields."""
    rows = []
    required = tuple(required)
    for number, obj in iter_jsonl(path):
        missing = [k for k in required if k not in obj]
        if missing:
            raise LemError(f"{path}:{number}: missing field(s) {', '.join(missing)}")
        rows.append(obj)
    return rows


def repair_tail(path: str | Path) -> int:
    """Cut a torn last line (no trailing newline) left by a killed writer; return bytes cut."""
    path = Path(path)
    if not path.exists():
        return 0
    with open(path, "rb+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size == 0:
            return 0
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        # Walk back to the last newline; everything after it is an incomplete record.
        pos = size - 1
        chunk = 4096
        while pos > 0:
            start = max(0, pos - chunk)
            f.seek(start)
            block = f.read(pos - start)
            idx = block.rfind(b"\n")
            if idx >= 0:
                keep = start + idx + 1
                break
            pos = start
        else:
            keep = 0
        f.truncate(keep)
        return size - keep


def read_done(path: str | Path, key: str = "id") -> dict[str, dict]:
    """Records already in an append-only results file, by `key` (the last one wins)."""
    path = Path(path)
    if not path.exists():
        return {}
    repair_tail(path)
    return {str(obj[key]): obj for _, obj in iter_jsonl(path) if key in obj}


class JsonlAppender:
    """Append records durably, one JSON line each; use as a context manager."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_tail(self.path)
        self._file = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict) -> None:
        # One write call per complete line, then fsync: a kill leaves whole lines only,
        # or a torn last line that repair_tail removes.
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_jsonl(path: str | Path, records: Iterable[dict]) -> None:
    """Write a whole JSONL file atomically (temp file, then rename)."""
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: str | Path) -> Any:
    """Parse a JSON file lem wrote; a damaged one is a one-line error naming it."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise LemError(f"{path}: unreadable JSON ({e}); delete it to start that part afresh")


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def versions() -> dict[str, str]:
    """Versions of lem, Python and the libraries that shape results."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "platform": f"{sys.platform}-{platform.machine()}"}
    for name in ("lem", "mlx", "mlx-lm", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


@dataclass
class Manifest:
    """What a stage made and from what: written as `manifest.json` in its output directory."""

    stage: str
    inputs: dict[str, str] = field(default_factory=dict)  # name -> sha256
    settings: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    counts: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def write(self, directory: str | Path) -> Path:
        """Hash the listed outputs (relative to `directory`) and write the manifest."""
        directory = Path(directory)
        outputs = {rel: sha256_tree(directory / rel) for rel in self.outputs}
        body = {
            "stage": self.stage,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "versions": versions(),
            "inputs": self.inputs,
            "settings": self.settings,
            "outputs": outputs,
            "counts": self.counts,
            **self.extra,
        }
        path = directory / MANIFEST
        write_json(path, body)
        return path


def verify_manifest(path: str | Path) -> list[str]:
    """Re-hash a manifest's outputs; return one line per problem (empty when all match)."""
    path = Path(path)
    try:
        body = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        return [f"{path}: unreadable manifest ({e})"]
    problems = []
    for rel, expected in body.get("outputs", {}).items():
        target = path.parent / rel
        if not target.exists():
            problems.append(f"{target}: missing (listed in {path})")
        elif sha256_tree(target) != expected:
            problems.append(f"{target}: changed since {path} was written")
    return problems
