"""The files of a training run: adapters, checkpoints, metrics and the loss plot.

Every directory (adapter, adapter-best, each checkpoint) is written under a temporary
name and renamed into place, so a run killed mid-write leaves the previous one intact.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from lem.errors import LemError
from lem.store import iter_jsonl, repair_tail, replace_dir, write_json, write_jsonl

ADAPTER_FILE = "adapters.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
# What a run leaves once it has saved anything worth keeping (a checkpoint comes first).
RUN_MARKERS = ("manifest.json", "adapter")


def save_adapter(model: Any, config: dict, target: Path, extra: dict | None = None) -> None:
    """Write adapters.safetensors + adapter_config.json (+ extra arrays/JSON) atomically."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    tmp = target.with_name(f".{target.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    mx.save_safetensors(str(tmp / ADAPTER_FILE), dict(tree_flatten(model.trainable_parameters())))
    write_json(tmp / ADAPTER_CONFIG, config)
    for name, value in (extra or {}).items():
        if name.endswith(".json"):
            write_json(tmp / name, value)
        else:
            mx.save_safetensors(str(tmp / name), value)
    replace_dir(tmp, target)


def load_trainable(model: Any, path: Path) -> None:
    """Load saved trainable weights, which must match the model's trainable set exactly."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    saved = mx.load(str(path))
    wanted = dict(tree_flatten(model.trainable_parameters()))
    wrong = sorted(set(saved) ^ set(wanted))
    wrong += sorted(k for k in set(saved) & set(wanted) if saved[k].shape != wanted[k].shape)
    if wrong:
        raise LemError(
            f"{path}: {len(wrong)} weight(s) do not fit this model and settings "
            f"(e.g. {wrong[0]}); was it trained from another base model?"
        )
    model.load_weights(list(saved.items()), strict=False)


def latest_checkpoint(out: Path) -> Path | None:
    """The newest checkpoint (each is renamed into place only once complete)."""
    done = sorted((out / "checkpoints").glob("step-*/state.json"))
    return done[-1].parent if done else None


def prune_checkpoints(out: Path, keep: int) -> None:
    if keep:
        for old in sorted((out / "checkpoints").glob("step-*"))[:-keep]:
            shutil.rmtree(old)


def restore_checkpoint(ckpt: Path, model: Any, optimizer: Any, fingerprint: dict) -> dict:
    """Load a checkpoint's weights and optimizer state; its state.json must match this run."""
    import mlx.core as mx
    from mlx.utils import tree_flatten, tree_map_with_path

    state = json.loads((ckpt / "state.json").read_text())
    changed = _diff(state["fingerprint"], fingerprint)
    if changed:
        raise LemError(
            f"{ckpt}: cannot resume, {', '.join(changed)} changed since this checkpoint; "
            "restore them or start a new run in another --out"
        )
    load_trainable(model, ckpt / ADAPTER_FILE)
    optimizer.init(model.trainable_parameters())
    saved = mx.load(str(ckpt / "optimizer.safetensors"))
    if set(saved) != {k for k, _ in tree_flatten(optimizer.state)}:
        raise LemError(f"{ckpt}: optimizer state does not match the model; start a new run")
    optimizer.state = tree_map_with_path(lambda path, _: saved[path], optimizer.state)
    optimizer.init(model.trainable_parameters())  # the state setter clears the init flag
    mx.eval(model.parameters(), optimizer.state)
    return state


def _diff(old: dict, new: dict) -> list[str]:
    keys = sorted(set(old["settings"]) | set(new["settings"]))
    changed = [k for k in keys if old["settings"].get(k) != new["settings"].get(k)]
    changed += [
        f"{k} (contents)" for k in sorted(new["inputs"]) if old["inputs"].get(k) != new["inputs"][k]
    ]
    return changed


def prepare_out(out: Path, resume: bool) -> Path | None:
    """Refuse to overwrite an earlier run; with `resume`, find its latest checkpoint.

    A run killed before its first checkpoint left nothing to keep, so a new run may
    start over in its directory.
    """
    ckpt = latest_checkpoint(out)
    if resume:
        if ckpt is None:
            raise LemError(f"{out}: no checkpoint to resume from; run without --resume")
        return ckpt
    if ckpt is not None or any((out / name).exists() for name in RUN_MARKERS):
        raise LemError(
            f"{out}: already holds a training run; pass --resume to continue it, "
            "or choose another --out"
        )
    return None


def trim_metrics(path: Path, step: int) -> None:
    """Drop records written after the checkpoint a resumed run restarts from."""
    if path.exists():
        repair_tail(path)
        write_jsonl(path, [r for _, r in iter_jsonl(path) if r.get("step", 0) <= step])


def plot_losses(metrics: Path, target: Path) -> None:
    """loss.png: training and validation loss against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for _, r in iter_jsonl(metrics)] if metrics.exists() else []
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, style in (("train_loss", "-"), ("val_loss", "o-")):
        points = [(r["step"], r[key]) for r in rows if key in r]
        if points:
            ax.plot(*zip(*points, strict=True), style, label=key.replace("_", " "))
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(target, dpi=100)
    plt.close(fig)
