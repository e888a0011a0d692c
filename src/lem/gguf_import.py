"""GGUF file -> MLX model directory that `mlx_lm.load` opens.

The conversion itself is gguf2mlx's (weights, config, tokenizer, chat template); lem
checks the file first so bad input fails with one clear line, keeps the library's
chatter off stdout, and records what it made.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import shutil
import time
import warnings
from pathlib import Path

from lem.errors import LemError
from lem.store import check_input_file, check_output_dir, replace_dir, sha256_file, write_json

DTYPES = ("keep", "float32", "bfloat16", "float16")
IMPORT_RECORD = "lem_import.json"


def supported_architectures() -> dict[str, str]:
    """GGUF architectures that gguf2mlx maps onto a model type mlx-lm implements."""
    from gguf2mlx.gguf2mlx import ARCH_MAP

    return {
        arch: model_type
        for arch, model_type in ARCH_MAP.items()
        if importlib.util.find_spec(f"mlx_lm.models.{model_type}") is not None
    }


def read_header(path: Path) -> dict:
    """Check that `path` is a complete GGUF and return its architecture and name."""
    check_input_file(path, "GGUF file")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise LemError(f"{path}: not a GGUF file (it starts with {magic!r}, not b'GGUF')")
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
    except Exception as e:  # the reader fails in many ways on a damaged file
        raise LemError(f"{path}: unreadable GGUF, truncated or corrupt ({type(e).__name__}: {e})")
    size = path.stat().st_size
    end = max((t.data_offset + t.n_bytes for t in reader.tensors), default=0)
    if end > size:
        raise LemError(f"{path}: truncated GGUF ({size} bytes, tensor data needs {end})")

    def field(key: str) -> str | None:
        f = reader.fields.get(key)
        return None if f is None else f.contents()

    return {
        "architecture": field("general.architecture"),
        "name": field("general.name"),
        "pre": field("tokenizer.ggml.pre"),
        "chat_template": field("tokenizer.chat_template"),
    }


def import_gguf(gguf: str | Path, out: str | Path, dtype: str = "float32") -> Path:
    """Convert `gguf` into the MLX model directory `out` (created or replaced).

    `dtype`: "keep" keeps the file's 4/8-bit quantization (re-expressed on MLX's affine
    grid); otherwise weights are de-quantized to float32, bfloat16 or float16.
    """
    import gguf2mlx

    gguf, out = Path(gguf), Path(out)
    if dtype not in DTYPES:
        raise LemError(f"--dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    check_output_dir(out)
    header = read_header(gguf)
    supported = supported_architectures()
    arch = header["architecture"]
    if arch not in supported:
        raise LemError(
            f"{gguf}: architecture {arch!r} is not supported; lem imports "
            f"{', '.join(sorted(supported))}"
        )
    if out.exists() and any(out.iterdir()) and not (out / IMPORT_RECORD).exists():
        raise LemError(f"{out}: exists and is not a lem import; choose an empty --out")
    start = time.perf_counter()
    chatter = io.StringIO()
    kwargs = {"quantize": True, "direct_quant": True} if dtype == "keep" else {"dtype": dtype}
    staging = out.with_name(out.name + ".importing")
    shutil.rmtree(staging, ignore_errors=True)
    with contextlib.redirect_stdout(chatter), warnings.catch_warnings():
        # lem sets the pre-tokenizer itself below where gguf2mlx only approximates it.
        warnings.filterwarnings("ignore", message="Unsupported tokenizer.ggml.pre")
        ok = gguf2mlx.convert(str(gguf), str(staging), weight_audit=False, **kwargs)
    if not ok:
        shutil.rmtree(staging, ignore_errors=True)
        lines = [ln.strip() for ln in chatter.getvalue().splitlines() if ln.strip()]
        reason = next((ln for ln in reversed(lines) if "❌" in ln), lines[-1] if lines else "")
        raise LemError(f"{gguf}: conversion failed: {reason.lstrip('❌ ')}")
    fix_pretokenizer(staging / "tokenizer.json", header["pre"])
    write_json(
        staging / IMPORT_RECORD,
        {
            "source": str(gguf.resolve()),
            "source_sha256": sha256_file(gguf),
            "architecture": arch,
            "name": header["name"],
            "chat_template": header["chat_template"] is not None,
            "dtype": dtype,
            "converter": f"gguf2mlx {gguf2mlx.__version__}",
            "seconds": round(time.perf_counter() - start, 1),
        },
    )
    replace_dir(staging, out)  # the old import stays whole until the new one is in place
    return out


# Pre-tokenizers (as tokenizers.json writes them) for GGUF `tokenizer.ggml.pre` values that
# gguf2mlx 2.2 does not know and approximates with a generic regex.
PRE_TOKENIZERS = {
    # SmolLM2: single digits, then GPT-2 byte-level splitting.
    "smollm": {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {
                "type": "ByteLevel",
                "add_prefix_space": False,
                "trim_offsets": True,
                "use_regex": True,
            },
        ],
    },
}


def fix_pretokenizer(tokenizer_json: Path, pre: str | None) -> bool:
    """Set the model's own pre-tokenizer where gguf2mlx fell back to an approximation."""
    if pre not in PRE_TOKENIZERS or not tokenizer_json.exists():
        return False
    spec = json.loads(tokenizer_json.read_text())
    spec["pre_tokenizer"] = PRE_TOKENIZERS[pre]
    tokenizer_json.write_text(json.dumps(spec, ensure_ascii=False))
    return True
