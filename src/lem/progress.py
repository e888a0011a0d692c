"""Progress on stderr for long work: done/total, rate, tokens/s and ETA."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    """Counts finished items and prints a status line, at most every `interval` seconds.

    On a terminal the line is redrawn in place; in logs (CI) a new line is printed.
    """

    def __init__(
        self,
        label: str,
        total: int,
        done: int = 0,
        stream: TextIO | None = None,
        interval: float = 2.0,
        clock=time.monotonic,
    ):
        self.label = label
        self.total = total
        self.done = done
        self._start_done = done
        self.tokens = 0
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self._clock = clock
        self._start = clock()
        self._last = -float("inf")
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def update(self, n: int = 1, tokens: int = 0, note: str = "", show: bool = True) -> None:
        """Count `n` finished items; print the line when due, unless `show` is False
        (items that finish in one burst: count each, then `show` once after the last)."""
        self.done += n
        self.tokens += tokens
        if show:
            self.show(note)

    def show(self, note: str = "") -> None:
        """Print the status line if `interval` has passed since the last one, or at the end."""
        now = self._clock()
        if now - self._last >= self.interval or self.done >= self.total:
            self._last = now
            self._print(self.line(note))

    def line(self, note: str = "") -> str:
        elapsed = max(self._clock() - self._start, 1e-9)
        new = self.done - self._start_done
        rate = new / elapsed
        parts = [f"{self.label}: {self.done}/{self.total}"]
        if new:
            parts.append(f"{rate:.2f}/s" if rate >= 0.1 else f"{1 / rate:.1f}s each")
        if self.tokens:
            parts.append(f"{self.tokens / elapsed:.1f} tok/s")
        left = self.total - self.done
        if new and left > 0:
            parts.append(f"ETA {_duration(left / rate)}")
        elif left <= 0:
            parts.append(f"done in {_duration(elapsed)}")
        if note:
            parts.append(note)
        return "  ".join(parts)

    def _print(self, text: str) -> None:
        if self._tty:
            end = "\n" if self.done >= self.total else ""
            self.stream.write("\r\033[K" + text + end)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self, note: str = "") -> None:
        """Print the final line if the last update did not."""
        if self._tty and self.done < self.total:
            self.stream.write("\n")
            self.stream.flush()
