"""The weight edit: remove a direction from what each layer writes into the residual stream.

For each layer's attention output and MLP down projection W (mlx layout: out x in, the
output in the residual stream), with r a unit direction and lambda(layer) the profile:

    W' = W - lambda r (r^T W)

lambda 1 removes the r component of the layer's write, 2 reflects it. The profile is a
triangle: `weight` at layer `peak`, falling linearly to 0 at `span` layers away. (Models
that norm a sub-block's output before adding it, Gemma 3, get the same edit on the matrix;
the norm then rescales what is left.)

The same edit is a rank-1 LoRA pair per matrix in mlx-lm's adapter format (rank 1,
scale 1): lora_a = (r^T W)^T and lora_b = -lambda r^T, so mlx-lm's fuse,
W + scale * lora_b^T lora_a^T, gives W' exactly; `lem fuse` fuses it and
`load_model(..., adapter=)` runs it unfused. A quantized matrix is de-quantized, edited
and quantized again with its own bits and group size: the edit then carries the
quantization error of one extra rounding, which is why the search runs de-quantized.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from lem.errors import LemError

# Where each family keeps the two matrices that write into the residual stream (paths
# inside one layer, as mlx-lm's LoRA `keys` name them); the first present is used.
ATTENTION_OUT = ("self_attn.o_proj", "attn.o_proj", "self_attn.out_proj", "attention.wo")
MLP_OUT = ("mlp.down_proj", "feed_forward.w2", "mlp.fc2", "mlp.c_proj")
ADAPTER_FILE = "adapters.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


@dataclass(frozen=True)
class Profile:
    """A triangular layer profile: `weight` at layer `peak`, 0 from `span` layers away."""

    peak: float
    span: float
    weight: float

    def weights(self, layers: int) -> list[float]:
        """lambda for each layer (0 where the triangle does not reach)."""
        return [max(0.0, self.weight * (1 - abs(i - self.peak) / self.span)) for i in range(layers)]


@dataclass(frozen=True)
class Target:
    """One matrix to edit: its layer, its path inside the layer, the module."""

    layer: int
    key: str
    module: nn.Module


def _pick(modules: dict[str, nn.Module], names: Sequence[str], layer: int) -> tuple[str, Any]:
    for name in names:
        module = modules.get(name)
        if isinstance(module, (nn.Linear, nn.QuantizedLinear)):
            return name, module
    raise LemError(
        f"layer {layer}: none of {', '.join(names)} is a linear layer; this model family "
        "(mixture-of-experts or an unknown layout) is not supported by lem abliterate"
    )


def targets(model: nn.Module) -> list[Target]:
    """The attention-output and MLP-output matrices of every layer, in layer order."""
    found = []
    for i, layer in enumerate(model.layers):
        modules = dict(layer.named_modules())
        for names in (ATTENTION_OUT, MLP_OUT):
            key, module = _pick(modules, names, i)
            found.append(Target(i, key, module))
    return found


def matrix(module: nn.Module) -> mx.array:
    """A linear layer's weight (out, in), de-quantized when stored quantized."""
    if isinstance(module, nn.QuantizedLinear):
        return mx.dequantize(
            module.weight,
            module.scales,
            module.get("biases"),
            group_size=module.group_size,
            bits=module.bits,
            mode=module.mode,
        )
    return module.weight


def set_matrix(module: nn.Module, weight: mx.array) -> None:
    """Store `weight` in a linear layer, quantized again the way it was when quantized."""
    if not isinstance(module, nn.QuantizedLinear):
        module.weight = weight.astype(module.weight.dtype)
        return
    packed = mx.quantize(weight, group_size=module.group_size, bits=module.bits, mode=module.mode)
    module.weight, module.scales = packed[0], packed[1]
    if len(packed) > 2 and packed[2] is not None:
        module.biases = packed[2]


def edited(weight: mx.array, r: mx.array, lam: float) -> mx.array:
    """W - lam r (r^T W), computed in float32."""
    w = weight.astype(mx.float32)
    return w - lam * mx.outer(r, r @ w)


def rank_one(weight: mx.array, r: mx.array, lam: float) -> tuple[mx.array, mx.array]:
    """The LoRA pair (lora_a: in x 1, lora_b: 1 x out) whose fuse at scale 1 is the edit."""
    w = weight.astype(mx.float32)
    return (r @ w)[:, None], (-lam * r)[None, :]


class Editor:
    """Applies one direction with a layer profile to a loaded model, and undoes it.

    The original arrays are kept (mlx arrays are immutable, so keeping them costs no copy);
    `restore` puts them back, so many trials run on one loaded model.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.targets = targets(model)
        self._saved = [dict(t.module.items()) for t in self.targets]

    def apply(self, direction: np.ndarray, lambdas: Sequence[float]) -> None:
        self.restore()
        r = mx.array(direction, dtype=mx.float32)
        for t in self.targets:
            lam = lambdas[t.layer]
            if lam > 0:
                set_matrix(t.module, edited(matrix(t.module), r, lam))
        mx.eval(self.model.parameters())

    def restore(self) -> None:
        for t, saved in zip(self.targets, self._saved, strict=True):
            t.module.update({k: v for k, v in saved.items() if isinstance(v, mx.array)})


def adapter_weights(
    model: nn.Module, direction: np.ndarray, lambdas: Sequence[float]
) -> dict[str, mx.array]:
    """The rank-1 LoRA weights of the edit, named as mlx-lm's LoRA layers name them."""
    names = {id(m): n for n, m in model.named_modules()}
    layers = list(model.layers)
    r = mx.array(direction, dtype=mx.float32)
    weights = {}
    for t in targets(model):
        a, b = rank_one(matrix(t.module), r, lambdas[t.layer])
        prefix = f"{names[id(layers[t.layer])]}.{t.key}"
        weights[f"{prefix}.lora_a"], weights[f"{prefix}.lora_b"] = a, b
    return weights


@dataclass(frozen=True)
class EditRecord:
    """Everything that reproduces an edit (kept beside the adapter as edit.json)."""

    trial: int
    source_layer: int
    profile: Profile
    lambdas: list[float]
    benign_rank: int
    orthogonalize: bool
    base_model: str


def save_adapter(model: nn.Module, direction: np.ndarray, record: EditRecord, out: Path) -> Path:
    """Write the edit as an mlx-lm adapter directory (plus the direction and edit.json)."""
    from lem.store import write_json

    out.mkdir(parents=True, exist_ok=True)
    keys = sorted({t.key for t in targets(model)})
    mx.save_safetensors(str(out / ADAPTER_FILE), adapter_weights(model, direction, record.lambdas))
    np.save(out / "direction.npy", direction)
    write_json(
        out / ADAPTER_CONFIG,
        {
            "fine_tune_type": "lora",
            "num_layers": len(model.layers),
            "lora_parameters": {"rank": 1, "scale": 1.0, "dropout": 0.0, "keys": keys},
            "base_model": record.base_model,
        },
    )
    (out / "edit.json").write_text(json.dumps(asdict(record), indent=2) + "\n")
    return out
