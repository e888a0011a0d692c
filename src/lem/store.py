"""Files every stage shares: text decoding, hashes, JSONL read/append with resume,
atomic writes and directory swaps, manifests.

Appends are durable (flush + fsync per line) and a torn last line left by a killed
process is cut off before the next append, so a re-run never sees half a record.
Every text input is decoded in one place (`read_text`, `iter_jsonl`), so a bad byte is
one line naming the file and line. Whole files and directories are written aside and
swapped into place, so a failed or refused write leaves the previous output intact.
Hashes of large files are memoised by (path, size, mtime) in `$LEM_HOME/hashes.sqlite`,
so a model directory is read in full once, not at every run.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import platform
import shutil
import sqlite3
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from lem.errors import LemError

MANIFEST = "manifest.json"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


MEMO_MIN_BYTES = 1 << 20  # smaller files are hashed directly: cheaper than a lookup


def _hash_stream(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _HashMemo:
    """File hashes keyed by (absolute path, size, mtime in ns, inode), kept across runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._memory: dict[tuple, str] = {}

    def _connect(self) -> sqlite3.Connection | None:
        if self._db is None:
            from lem.fetch import lem_home

            try:
                path = lem_home() / "hashes.sqlite"
                path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(path, check_same_thread=False, timeout=30)
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS files (key TEXT PRIMARY KEY, sha256 TEXT)"
                )
            except (OSError, sqlite3.Error):
                return None  # a read-only home: memoise in this process only
        return self._db

    def get(self, path: Path) -> str:
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
        with self._lock:
            if key in self._memory:
                return self._memory[key]
            db = self._connect()
            text = json.dumps(key)
            row = (
                db.execute("SELECT sha256 FROM files WHERE key = ?", (text,)).fetchone()
                if db
                else None
            )
        digest = row[0] if row else _hash_stream(path)
        with self._lock:
            self._memory[key] = digest
            if not row and db is not None:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("INSERT OR REPLACE INTO files VALUES (?, ?)", (text, digest))
                    db.commit()
        return digest


_MEMO = _HashMemo()


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file, streamed; large files are memoised by path, size and mtime."""
    path = Path(path)
    if path.stat().st_size < MEMO_MIN_BYTES:
        return _hash_stream(path)
    return _MEMO.get(path)


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
    for f in sorted(p for p in path.rglob("*") if p.is_file() and p.name != LOCK_FILE):
        digest.update(str(f.relative_to(path)).encode() + b"\0")
        digest.update(sha256_file(f).encode())
    return digest.hexdigest()


def decode_line(path: str | Path, number: int, raw: bytes) -> str:
    """One line of a text file as str; a bad byte is a LemError naming file, line, column."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise LemError(
            f"{path}:{number}: not UTF-8 text (byte 0x{raw[e.start]:02X} at column "
            f"{e.start + 1}); save the file as UTF-8"
        )


def check_input_file(path: str | Path, what: str = "file") -> Path:
    """An existing regular file, or a one-line LemError saying what is there instead."""
    path = Path(path)
    if path.is_dir():
        raise LemError(f"{path}: is a directory, not a {what}")
    if not path.is_file():
        raise LemError(f"{path}: {what} not found")
    return path


def decode_text(path: str | Path, data: bytes) -> str:
    """A whole file's bytes as UTF-8 text (a BOM is dropped); a bad byte is a LemError
    naming the file, line and column."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        for number, raw in enumerate(data.splitlines(keepends=True), 1):
            decode_line(path, number, raw)
        raise  # unreachable: some line holds the bad byte


def read_bytes(path: str | Path, what: str = "file") -> bytes:
    """An existing regular file's bytes; one-line errors for what is there instead."""
    path = check_input_file(path, what)
    try:
        return path.read_bytes()
    except OSError as e:
        raise LemError(f"{path}: cannot read ({e.strerror})")


def read_text(path: str | Path, what: str = "file") -> str:
    """A UTF-8 text file's contents (a BOM is dropped); one-line errors naming file and line."""
    return decode_text(path, read_bytes(path, what))


def iter_lines(path: str | Path, what: str = "file") -> Iterator[tuple[int, str]]:
    """(line number, text) of each line of a UTF-8 file, decoded line by line."""
    path = check_input_file(path, what)
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            text = decode_line(path, number, raw)
            yield number, text.lstrip("\ufeff") if number == 1 else text


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line; one-line LemError on bad input."""
    path = Path(path)
    for number, line in iter_lines(path):
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
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            repair_tail(self.path)
            self._file = open(self.path, "a", encoding="utf-8")
        except OSError as e:
            raise write_error(self.path, e)

    def write(self, record: dict) -> None:
        # One write call per complete line, then fsync: a kill leaves whole lines only,
        # or a torn last line that repair_tail removes.
        try:
            self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as e:
            raise write_error(self.path, e)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_jsonl(path: str | Path, records: Iterable[dict]) -> None:
    """Write a whole JSONL file atomically (temp file, then rename)."""
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def write_error(path: str | Path, error: OSError) -> LemError:
    """An OSError at write time (a full disk, no permission) as one line naming the path."""
    why = error.strerror or type(error).__name__
    hint = "; free some space and run again" if error.errno in (errno.ENOSPC, errno.EDQUOT) else ""
    return LemError(f"{path}: cannot write ({why}){hint}")


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a file under a temporary name and rename it into place; never half a file.

    A failed write removes its temporary file; one left by a killed writer
    (`.NAME.tmp<pid>` of a process that is gone) is removed by the next write.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise write_error(path, e)
    for stale in path.parent.glob(f".{path.name}.tmp*"):
        pid = stale.name.rpartition(".tmp")[2]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                stale.unlink()


def _alive(pid: int) -> bool:
    """Whether a process with this id exists (this one included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def replace_dir(tmp: str | Path, target: str | Path) -> None:
    """Swap a fully written directory into place; the old one is removed only afterwards.

    The old directory is renamed aside before the new one is renamed in, so at every
    moment one complete version exists (a crash between the two renames leaves it at
    `.NAME.old`, which the next swap clears).
    """
    tmp, target = Path(tmp), Path(target)
    old = target.with_name(f".{target.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    if old.exists():
        shutil.rmtree(old)


def check_output_dir(path: str | Path, option: str = "--out") -> Path:
    """An output directory that can be created or written: not a file, not read-only."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise LemError(f"{option} {path}: is a file, not a directory; choose a directory")
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise LemError(f"{option} {path}: {probe} is a file, so {path} cannot be created")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise LemError(f"{option} {path}: {probe} is not writable")
    return path


def check_output_file(path: str | Path, option: str) -> Path:
    """An output file path that is not a directory and whose folder can be written."""
    path = Path(path)
    if path.is_dir():
        raise LemError(f"{option} {path}: is a directory; give a file name")
    check_output_dir(path.parent if str(path.parent) else Path("."), option)
    return path


def read_json(path: str | Path) -> Any:
    """Parse a JSON file lem wrote; a damaged one is a one-line error naming it."""
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise LemError(f"{path}: unreadable JSON ({e}); delete it to start that part afresh")


def read_manifest(directory: str | Path, stage: str | None = None) -> dict:
    """DIRECTORY/manifest.json ({} when there is none); with `stage`, it must be that stage's.

    A manifest of another stage means the directory holds another stage's output: an
    error naming both, so one stage never overwrites another's files.
    """
    path = Path(directory) / MANIFEST
    if not path.is_file():
        return {}
    body = read_json(path)
    if not isinstance(body, dict):
        raise LemError(f"{path}: not a lem manifest; restore or delete it")
    found = body.get("stage")
    if stage is not None and found != stage:
        raise LemError(
            f"{path}: {Path(directory)} holds a {found!r} stage's output, not {stage!r}; "
            "use another output directory"
        )
    return body


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
        body = read_json(path)
    except LemError as e:
        return [str(e)]
    if not isinstance(body, dict) or not isinstance(body.get("outputs", {}), dict):
        return [f"{path}: not a lem manifest; restore or delete it"]
    problems = []
    for rel, expected in body.get("outputs", {}).items():
        target = path.parent / rel
        if not target.exists():
            problems.append(f"{target}: missing (listed in {path})")
        elif sha256_tree(target) != expected:
            problems.append(f"{target}: changed since {path} was written")
    return problems


LOCK_FILE = ".lem.lock"
_HELD: dict[str, int] = {}  # lock files this process holds, with their nesting depth


@contextlib.contextmanager
def locked(directory: str | Path) -> Iterator[Path]:
    """Hold an exclusive lock on an output directory while a command writes it.

    A second process gets a one-line error naming the directory and the holder's pid.
    The lock is an `flock` on DIRECTORY/.lem.lock, which the operating system releases
    when its holder exits, however it exits: a lock left by a killed process is simply
    taken. Re-entrant within one process (`lem run` holds its run directory while each
    stage locks its own).
    """
    directory = Path(directory)
    check_output_dir(directory)
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_FILE
    key = str(path.resolve())
    if _HELD.get(key):
        _HELD[key] += 1
        try:
            yield directory
        finally:
            _HELD[key] -= 1
        return
    handle = _acquire(directory, path)
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        _HELD[key] = 1
        yield directory
    finally:
        _HELD.pop(key, None)
        if created and [p.name for p in directory.iterdir()] == [LOCK_FILE]:
            with contextlib.suppress(OSError):  # another process may be starting in it
                path.unlink()  # a command that wrote nothing leaves no directory behind
                directory.rmdir()
        handle.close()  # closing releases the flock


def _acquire(directory: Path, path: Path) -> TextIO:
    """Open and flock the lock file, or raise the one-line error naming its holder.

    The lock is checked to still be the file at `path` once held: a holder that removed
    it on its way out (see `locked`) leaves a lock on a file nobody else can find.
    """
    import fcntl

    while True:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            handle = open(path, "a+")
        except FileNotFoundError:
            continue  # the last holder removed its empty directory just now
        except OSError as e:
            raise write_error(path, e)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise LemError(
                f"{directory}: in use by another lem process (pid {holder}); wait for it to "
                "finish or use another output directory"
            )
        try:
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(handle.fileno()).st_ino:
            return handle
        handle.close()
