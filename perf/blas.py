"""Matmul GFLOPS inside lem's process, with and without the Linux CPU fast path.

Each variant runs in a fresh process (the BLAS choice is made before mlx loads, once per
process), side by side in one run. Usage: python perf/blas.py
"""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
import lem, lem.blas as b
s = b.state()
g = b.measure_gflops(repeats={repeats})
print(f"{{g:.2f}}\\t{{s.library or '-'}}\\t{{s.detail}}")
"""


def measure(env_blas: str | None, repeats: int) -> tuple[float, str]:
    env = dict(os.environ)
    env.pop("LEM_BLAS", None)
    if env_blas is not None:
        env["LEM_BLAS"] = env_blas
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(repeats=repeats)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    gflops, lib, detail = out.split("\t")
    return float(gflops), f"{lib} ({detail})"


def main() -> None:
    fast, fast_lib = measure(None, repeats=50)
    slow, slow_lib = measure("off", repeats=5)
    import time

    import numpy as np

    a = np.random.rand(512, 576).astype(np.float32)
    b = np.random.rand(576, 1536).astype(np.float32)
    a @ b
    start = time.perf_counter()
    for _ in range(50):
        a @ b
    numpy_gflops = 2 * 512 * 576 * 1536 * 50 / (time.perf_counter() - start) / 1e9
    print("float32 matmul 512x576x1536 (a SmolLM2-135M MLP shape), MLX default device")
    print(f"  lem fast path     {fast:8.1f} GFLOPS   BLAS: {fast_lib}")
    print(f"  LEM_BLAS=off      {slow:8.1f} GFLOPS   BLAS: {slow_lib}")
    print(f"  numpy (reference) {numpy_gflops:8.1f} GFLOPS")
    print(f"  speed-up          {fast / slow:8.1f}x")


if __name__ == "__main__":
    main()
