"""A real local OpenAI-compatible server: `mlx_lm server` on a model directory.

`lem run` uses it for a local judge (the quick profile serves the base model), and the
tests use it to drive the openai SDK against a real server.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from lem import blas
from lem.errors import LemError


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def blas_file() -> str | None:
    """Absolute path of the BLAS library lem preloaded (None where there is none).

    `mlx_lm server` runs in a new interpreter that never imports lem; LD_PRELOAD with this
    file gives it the same fast path. lem records a soname, so `dladdr` on the loaded
    `cblas_sgemm` names the actual file.
    """
    name = blas.state().library
    if name is None or sys.platform != "linux":
        return None
    if os.path.isabs(name):
        return name

    class DlInfo(ctypes.Structure):
        _fields_ = [
            ("dli_fname", ctypes.c_char_p),
            ("dli_fbase", ctypes.c_void_p),
            ("dli_sname", ctypes.c_char_p),
            ("dli_saddr", ctypes.c_void_p),
        ]

    symbol = ctypes.cast(ctypes.CDLL(name).cblas_sgemm, ctypes.c_void_p)
    info = DlInfo()
    if not ctypes.CDLL(None).dladdr(symbol, ctypes.byref(info)) or not info.dli_fname:
        raise RuntimeError(f"cannot locate the file of {name} (dladdr failed)")
    return os.path.realpath(info.dli_fname.decode())


@contextlib.contextmanager
def mlx_server(model_dir: str | Path, wait_s: float = 180.0) -> Iterator[str]:
    """Run `python -m mlx_lm server --model DIR` on a free port; yield its `.../v1` URL.

    Waits (at most `wait_s`) until `/health` answers; if the process dies or the wait runs
    out, fails with the tail of its log. The process is terminated on exit. The served
    model is named `default_model` in requests.
    """
    if not (Path(model_dir) / "config.json").is_file():
        raise LemError(f"{model_dir}: not a model directory to serve (no config.json)")
    port = free_port()
    env = dict(os.environ)
    library = blas_file()
    if library:
        env["LD_PRELOAD"] = " ".join(p for p in (library, env.get("LD_PRELOAD")) if p)
    cmd = [sys.executable, "-m", "mlx_lm", "server", "--model", str(model_dir)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "WARNING"]
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            _wait_healthy(proc, f"http://127.0.0.1:{port}/health", wait_s, log)
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_healthy(proc: subprocess.Popen, url: str, wait_s: float, log: IO[str]) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlx_lm server exited with {proc.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.25)  # not listening (or not healthy) yet: poll until the deadline
    raise RuntimeError(f"mlx_lm server did not answer {url} within {wait_s:g}s:\n{_tail(log)}")


def _tail(log: IO[str], chars: int = 3000) -> str:
    log.flush()
    log.seek(0)
    return log.read()[-chars:]
