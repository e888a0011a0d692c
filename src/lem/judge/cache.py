"""A verdict cache: re-scoring the same content with the same judge and rubric is free.

One SQLite file (default `$LEM_HOME/verdicts.sqlite`, else `~/.cache/lem/`). The key is a
SHA-256 of the judge's identity (a local model's content hash, or an API model's name and
server), the rubric version, the verdict prompt template's version and the exact judged
content (question, references, response): a changed rubric, prompt, judge or response
misses. Only valid verdicts are stored: an unscored one is asked again next time.
Nothing secret is stored: the judge appears as its spec, its server only inside the hash.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lem.errors import LemError
from lem.store import sha256_json

SCHEMA = """
CREATE TABLE IF NOT EXISTS verdicts (
    key TEXT PRIMARY KEY,
    judge TEXT NOT NULL,
    rubric_version TEXT NOT NULL,
    verdict TEXT NOT NULL,
    raw TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    created TEXT NOT NULL
)
"""


def default_cache_path() -> Path:
    """`$LEM_HOME/verdicts.sqlite`, else `~/.cache/lem/verdicts.sqlite`."""
    from lem.fetch import lem_home

    return lem_home() / "verdicts.sqlite"


def cache_key(judge: str, rubric_version: str, template_version: str, content: dict) -> str:
    """The key for one judged item: judge identity, rubric and prompt versions, content."""
    return sha256_json(
        {"judge": judge, "rubric": rubric_version, "template": template_version, "content": content}
    )


@dataclass
class Cached:
    """A stored verdict."""

    values: dict[str, Any]
    raw: str
    prompt_tokens: int
    completion_tokens: int


class VerdictCache:
    """Thread-safe get/put of valid verdicts (judge clients may call back from threads)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            self._db.execute(SCHEMA)
            self._db.commit()
        except (OSError, sqlite3.Error) as e:
            raise LemError(
                f"{self.path}: cannot be used as the verdict cache ({e}); give another "
                "--cache file or --no-cache"
            ) from None

    def get(self, key: str) -> Cached | None:
        with self._lock:
            row = self._db.execute(
                "SELECT verdict, raw, prompt_tokens, completion_tokens FROM verdicts WHERE key = ?",
                (key,),
            ).fetchone()
        if row is None:
            return None
        return Cached(json.loads(row[0]), row[1], row[2], row[3])

    def put(
        self, key: str, judge: str, rubric_version: str, values: dict, raw: str, usage: tuple
    ) -> None:
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with self._lock:
            # Committed per verdict: a run killed halfway keeps what it paid for.
            self._db.execute(
                "INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key, judge, rubric_version, json.dumps(values), raw, *usage, created),
            )
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
