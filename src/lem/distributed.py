"""Several processes, one job: the group that `mlx.launch` starts, and what lem sends over it.

`mlx.launch --hostfile hosts.json lem train ...` (ring over TCP between Macs, MPI, or
NCCL on CUDA) starts one process per rank; `mx.distributed.init()` joins them into a
group, and a process started on its own is a group of one. Rank 0 owns the output
directory: its lock, manifests and merged files. Nothing here needs a shared disk: what
another rank makes reaches rank 0 over the group (JSON bytes as a uint8 array).

`lem train -n N` / `lem bench -n N` start N local processes of a ring group themselves
(`launch_local`): the same group `mlx.launch --backend ring -n N` makes, and the command
fails when a rank fails (`mlx.launch` exits 0 whatever its ranks do).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, TypeVar

from lem.errors import LemError

T = TypeVar("T")
BACKENDS = ("ring", "mpi", "nccl", "jaccl")


def group() -> Any:
    """This process's group: every rank `mlx.launch` started, or a group of one."""
    import mlx.core as mx

    return mx.distributed.init()


def is_primary() -> bool:
    """Whether this process is rank 0, the one that writes and prints."""
    return group().rank() == 0


def all_sum(g: Any, x: Any) -> Any:
    """The sum of `x` over the group (itself in a group of one)."""
    import mlx.core as mx

    return mx.distributed.all_sum(x, group=g) if g.size() > 1 else x


def agree(g: Any, fn: Callable[[], T]) -> T:
    """`fn()` on every rank; a LemError on any rank stops every rank.

    Each rank raises its own error, or one saying another rank failed, so no rank is left
    waiting in a collective for a rank that has stopped.
    """
    import mlx.core as mx

    error: LemError | None = None
    result: Any = None
    try:
        result = fn()
    except LemError as e:
        error = e
    if g.size() == 1:
        if error is not None:
            raise error
        return result
    flags = mx.zeros(g.size(), mx.int32)
    flags[g.rank()] = error is not None
    failed = [r for r, flag in enumerate(all_sum(g, flags).tolist()) if flag]
    if error is not None:
        raise error
    if failed:
        raise LemError(f"stopped: rank {', '.join(map(str, failed))} failed (see its message)")
    return result


@contextmanager
def rank0_locked(g: Any, out: Path, check: Callable[[], None] | None = None) -> Iterator[None]:
    """Rank 0 checks (`check`) and locks the output directory `out` for the body; the other
    ranks write nothing there. A refusal on rank 0 stops every rank (`agree`)."""
    from lem.store import locked

    with ExitStack() as stack:

        def take_out() -> None:
            if g.rank() == 0:
                if check is not None:
                    check()
                stack.enter_context(locked(out))

        agree(g, take_out)
        yield


def in_turn(g: Any, fn: Callable[[], T]) -> T:
    """`fn()` on rank 0, then on the other ranks: what it downloads or imports into a cache
    that ranks on one machine share is made once, not by several ranks at the same time."""
    first = agree(g, fn if g.rank() == 0 else lambda: None)
    if g.size() == 1:
        return first
    later = agree(g, (lambda: None) if g.rank() == 0 else fn)
    return first if g.rank() == 0 else later


def broadcast_json(g: Any, obj: Any) -> Any:
    """Rank 0's JSON value, on every rank."""
    import mlx.core as mx

    if g.size() == 1:
        return obj
    data = json.dumps(obj).encode() if g.rank() == 0 else b""
    size = int(all_sum(g, mx.array(len(data), mx.int32)).item())
    mine = _bytes(data) if g.rank() == 0 else mx.zeros(size, mx.uint8)
    return json.loads(bytes(all_sum(g, mine)))


def gather_json(g: Any, obj: Any) -> list[Any]:
    """Every rank's JSON value, in rank order, on every rank."""
    import mlx.core as mx

    if g.size() == 1:
        return [obj]
    data = json.dumps(obj).encode()
    sizes = mx.zeros(g.size(), mx.int32)
    sizes[g.rank()] = len(data)
    sizes = all_sum(g, sizes).tolist()
    padded = mx.zeros(max(sizes), mx.uint8)
    if data:
        padded[: len(data)] = _bytes(data)
    rows = mx.distributed.all_gather(padded[None], group=g)
    return [json.loads(bytes(rows[r, :n])) for r, n in enumerate(sizes)]


def barrier(g: Any) -> None:
    """Return once every rank has reached this point."""
    import mlx.core as mx

    if g.size() > 1:
        mx.eval(all_sum(g, mx.array(1)))


def _bytes(data: bytes) -> Any:
    import mlx.core as mx
    import numpy as np

    return mx.array(np.frombuffer(data, np.uint8))


def describe() -> str:
    """Which backends this MLX build has and the group this process is in (`lem doctor`)."""
    import mlx.core as mx

    have = [b for b in BACKENDS if mx.distributed.is_available(backend=b)]
    g = group()
    if g.size() > 1:
        return f"rank {g.rank()} of {g.size()} ({', '.join(have)} available)"
    if not have:
        return "not available in this MLX build"
    return (
        f"{', '.join(have)} available; this process runs alone (start several with "
        "`lem train -n N`, `lem bench -n N` or mlx.launch)"
    )


# ---- starting local ranks -------------------------------------------------------------


def launch_if_asked(processes: int | None, argv: list[str] | None = None) -> None:
    """With `processes` > 1 in a process running alone, run this command as that many local
    ranks of a ring group and exit with their status; inside a group, check its size."""
    if processes is None:
        return
    size = group().size()
    if size > 1:
        if size != processes:
            raise LemError(f"-n {processes}: this process is one of a group of {size}")
        return
    if processes > 1:
        sys.exit(launch_local(processes, sys.argv[1:] if argv is None else argv))


def launch_local(n: int, argv: list[str]) -> int:
    """Run `lem ARGV` as `n` ranks of a ring group on this machine; their exit status.

    The ranks share this machine's cores, so each gets an equal share of the BLAS threads
    (unless OPENBLAS_NUM_THREADS is set). If a rank fails, the others are stopped.
    """
    ports = free_ports(n)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump([[f"127.0.0.1:{p}"] for p in ports], f)
    env = dict(os.environ, MLX_HOSTFILE=f.name)
    env.setdefault("OPENBLAS_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // n)))
    command = [sys.executable, "-m", "lem", *argv]
    procs = [subprocess.Popen(command, env=env | {"MLX_RANK": str(r)}) for r in range(n)]
    try:
        return _wait(procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=10)
            if p.poll() is None:
                p.kill()
        os.unlink(f.name)


def _wait(procs: list[subprocess.Popen]) -> int:
    """Wait for every rank; the first failure's exit code (a signal's as 128 + its number)."""
    while True:
        codes = [p.poll() for p in procs]
        failed = [c for c in codes if c not in (None, 0)]
        if failed:
            return failed[0] if failed[0] > 0 else 128 - failed[0]
        if all(c == 0 for c in codes):
            return 0
        time.sleep(0.05)


def free_ports(n: int) -> list[int]:
    """`n` TCP ports on 127.0.0.1 that were free a moment ago."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()
