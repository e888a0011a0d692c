"""The Linux CPU fast path: put an optimized BLAS under MLX before MLX loads.

MLX's Linux CPU wheel links the netlib reference BLAS (a few GFLOPS). MLX calls
`cblas_sgemm` through the dynamic linker, so a library that exports it and is
loaded with RTLD_GLOBAL *before* the first `import mlx` takes over every matmul
(about 30x faster here). After mlx is imported it is too late, which is why
`lem/__init__.py` calls `preload()` first thing.

`LEM_BLAS=off` disables the fast path; `LEM_BLAS=/path/to/lib.so` picks a library.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import sys
from dataclasses import dataclass

ENV_VAR = "LEM_BLAS"

# Sonames tried in order; the dynamic linker searches its usual paths for each.
CANDIDATES = (
    "libopenblas.so.0",
    "libopenblas.so",
    "libopenblasp-r0.so",
    "libblis.so.4",
    "libmkl_rt.so.2",
    "libmkl_rt.so",
)

INSTALL_HINT = (
    "CPU math runs on MLX's slow reference BLAS; install OpenBLAS for about 30x faster "
    "training and generation: `sudo apt-get install libopenblas0-pthread` (Debian/Ubuntu), "
    "`sudo dnf install openblas` (Fedora), or set LEM_BLAS=/path/to/libopenblas.so"
)


@dataclass(frozen=True)
class BlasState:
    """What `preload` did: the library path loaded (or None) and why."""

    library: str | None
    detail: str

    @property
    def active(self) -> bool:
        return self.library is not None


_state: BlasState | None = None


def _try_load(name: str) -> str | None:
    try:
        lib = ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL)
    except OSError:
        return None
    if not hasattr(lib, "cblas_sgemm"):
        return None
    return name


def preload() -> BlasState:
    """Load an optimized BLAS globally if this is Linux and MLX is not imported yet.

    Safe to call many times; the first call decides.
    """
    global _state
    if _state is not None:
        return _state
    choice = os.environ.get(ENV_VAR, "").strip()
    if sys.platform != "linux":
        _state = BlasState(None, f"not needed on {platform.system()} (MLX uses its own BLAS)")
    elif choice.lower() in ("off", "0", "none", "false"):
        _state = BlasState(None, f"disabled by {ENV_VAR}={choice}")
    elif "mlx.core" in sys.modules:
        _state = BlasState(None, "mlx was imported before lem; import lem first")
    elif choice:
        loaded = _try_load(choice)
        _state = (
            BlasState(loaded, f"{ENV_VAR}={choice}")
            if loaded
            else BlasState(None, f"{ENV_VAR}={choice} could not be loaded or lacks cblas_sgemm")
        )
    else:
        found = ctypes.util.find_library("openblas")
        names = ([found] if found else []) + list(CANDIDATES)
        loaded = next((lib for lib in map(_try_load, names) if lib), None)
        _state = (
            BlasState(loaded, "optimized BLAS loaded before mlx")
            if loaded
            else BlasState(None, "no optimized BLAS found")
        )
    return _state


def state() -> BlasState:
    """The fast path's state (runs `preload` if nothing has yet)."""
    return preload()


def needs_hint() -> bool:
    """True where the CPU backend would run on the reference BLAS."""
    return sys.platform == "linux" and not state().active


def measure_gflops(m: int = 512, k: int = 576, n: int = 1536, repeats: int = 20) -> float:
    """Measured float32 matmul GFLOPS on MLX's default device (shapes of a 135M model)."""
    import time

    import mlx.core as mx

    a = mx.random.normal((m, k))
    b = mx.random.normal((k, n))
    mx.eval(a @ b)  # warm up
    start = time.perf_counter()
    for _ in range(repeats):
        mx.eval(a @ b)
    seconds = time.perf_counter() - start
    return 2.0 * m * k * n * repeats / seconds / 1e9
