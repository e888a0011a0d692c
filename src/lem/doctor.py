"""`lem doctor`: what lem will run on here, measured, and what to fix."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from lem import blas
from lem.store import versions

KEY_VARS = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "OPENAI_API_KEY", "HF_TOKEN")


@dataclass
class Report:
    """Backend, BLAS state and speed, versions, keys present (never their values)."""

    device: str
    blas_library: str | None
    blas_detail: str
    gflops: float
    versions: dict[str, str]
    keys: dict[str, bool]
    hints: list[str]
    distributed: str = ""  # backends in this MLX build and the group this process is in


def diagnose() -> Report:
    """Measure and collect everything `lem doctor` prints."""
    import mlx.core as mx

    from lem.distributed import describe

    state = blas.state()
    device = mx.default_device()
    name = f"{device.type.name}"
    try:
        info = mx.device_info() if hasattr(mx, "device_info") else {}
        name += f" ({info.get('device_name') or info.get('architecture') or 'default'})"
    except Exception as e:  # device_info is informational; report why it is missing
        name += f" (no device info: {type(e).__name__})"
    hints = []
    if blas.needs_hint() and device.type == mx.DeviceType.cpu:
        hints.append(blas.INSTALL_HINT)
    keys = {k: bool(os.environ.get(k)) for k in KEY_VARS}
    if not (keys["GEMINI_API_KEY"] or keys["GOOGLE_API_KEY"]):
        hints.append(
            "no Gemini key: set GEMINI_API_KEY to use gemini/<model> as teacher or judge "
            "(a local mlx/ or openai/ judge needs none)"
        )
    return Report(
        device=name,
        blas_library=state.library,
        blas_detail=state.detail,
        gflops=blas.measure_gflops(),
        versions=versions(),
        keys=keys,
        hints=hints,
        distributed=describe(),
    )


def format_report(r: Report) -> str:
    """The report as aligned lines."""
    rows = [
        ("backend", r.device),
        (
            "BLAS",
            f"{r.blas_library} ({r.blas_detail})" if r.blas_library else r.blas_detail,
        ),
        ("matmul", f"{r.gflops:.1f} GFLOPS (float32, 512x576x1536)"),
        ("distributed", r.distributed),
        *[(k, v) for k, v in r.versions.items()],
        *[(k, "set" if v else "not set") for k, v in r.keys.items()],
        ("executable", sys.executable),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
    lines += [f"hint: {h}" for h in r.hints]
    return "\n".join(lines)
