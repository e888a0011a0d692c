"""`lem fuse`: base model + adapter -> a standalone MLX model directory (and GGUF).

The same steps as mlx-lm's fuse command (load with the adapter, call each layer's
`fuse`, optionally de-quantize, `save`), plus checks up front, an atomic output
directory and a manifest. The base keeps its stored precision unless `dequantize`.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from pathlib import Path
from typing import Any

from lem.errors import LemError
from lem.store import MANIFEST, Manifest, check_output_dir, replace_dir, sha256_tree

GGUF_TYPES = ("llama", "mixtral", "mistral")  # what mlx_lm.gguf.convert_to_gguf writes
GGUF_FILE = "model.gguf"


def _check_out(out: Path) -> None:
    """Only replace an empty directory or an earlier fuse output, never other files."""
    check_output_dir(out)
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise LemError(f"{out}: exists and is not a lem fuse output; choose another --out")


def _check_gguf(config: dict, dequantize: bool) -> None:
    model_type = config.get("model_type")
    if model_type not in GGUF_TYPES:
        raise LemError(
            f"GGUF export: mlx-lm converts only {', '.join(GGUF_TYPES)} models, "
            f"not {model_type!r}; fuse without --gguf"
        )
    if "quantization" in config and not dequantize:
        raise LemError("GGUF export: the base model is quantized; add --dequantize")


def _unpermute(w: Any, heads: int) -> Any:
    """Inverse of mlx_lm.gguf.permute_weights (which converts the HF rotary layout)."""
    rows = w.shape[0]
    return w.reshape(heads, rows // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(directory: Path, model: Any, config: dict) -> Path:
    """Write `model.gguf` beside the fused model with mlx-lm's converter.

    mlx-lm permutes Q/K rows from the Hugging Face rotary layout into llama.cpp's. A
    model with `rope_traditional` (one imported from GGUF) is already in llama.cpp's
    layout, so the rows are un-permuted first and come out unchanged.
    """
    from mlx.utils import tree_flatten
    from mlx_lm.gguf import convert_to_gguf

    weights = dict(tree_flatten(model.parameters()))
    if config.get("rope_traditional"):
        heads = config["num_attention_heads"]
        kv_heads = config.get("num_key_value_heads", heads)
        for name in weights:
            if name.endswith("self_attn.q_proj.weight"):
                weights[name] = _unpermute(weights[name], heads)
            elif name.endswith("self_attn.k_proj.weight"):
                weights[name] = _unpermute(weights[name], kv_heads)
    target = directory / GGUF_FILE
    with contextlib.redirect_stdout(sys.stderr):  # the converter prints its progress
        convert_to_gguf(directory, weights, dict(config), str(target))
    return target


def fuse(
    base: str | Path,
    adapter: str | Path,
    out: str | Path,
    dequantize: bool = False,
    export_gguf: bool = False,
    base_hash: str | None = None,
) -> Path:
    """Fuse `adapter` into `base` and save a model directory `mlx_lm.load` opens; return it.

    `dequantize` stores a quantized base's fused weights unquantized; `export_gguf` also
    writes `model.gguf` (llama-family models only). `base_hash` skips re-hashing the base.
    """
    from mlx.utils import tree_unflatten
    from mlx_lm.utils import dequantize_model, save

    from lem.models import load_model, read_config, resolve_model_path

    adapter, out = Path(adapter), Path(out)
    _check_out(out)
    if not (adapter / "adapter_config.json").is_file():
        raise LemError(f"{adapter}: not an adapter directory (no adapter_config.json)")
    base_path = resolve_model_path(str(base))
    config = read_config(base_path)
    if export_gguf:
        _check_gguf(config, dequantize)
    loaded = load_model(base, adapter=adapter, dequantize=False)
    model, config = loaded.model, dict(loaded.config)
    fused = [
        (n, m.fuse(dequantize=dequantize)) for n, m in model.named_modules() if hasattr(m, "fuse")
    ]
    if fused:
        model.update_modules(tree_unflatten(fused))
    if dequantize:
        model = dequantize_model(model)
        config.pop("quantization", None)
        config.pop("quantization_config", None)
    tmp = out.with_name(f".{out.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    save(tmp, base_path, model, loaded.tokenizer, dict(config), donate_model=False)
    if export_gguf:
        write_gguf(tmp, model, config)
    Manifest(
        stage="fuse",
        inputs={
            "base_model": base_hash or sha256_tree(base_path),
            "adapter": sha256_tree(adapter),
        },
        settings={
            "base": str(base),
            "adapter": str(adapter),
            "dequantize": dequantize,
            "export_gguf": export_gguf,
        },
        outputs={p.name: "" for p in sorted(tmp.iterdir()) if p.is_file()},
    ).write(tmp)
    replace_dir(tmp, out)  # the previous model stays whole until the new one is in place
    return out
