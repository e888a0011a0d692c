"""`lem train`: LoRA, DoRA or full fine-tuning with mlx-lm's tuner, from Python.

mlx-lm supplies the pieces: `linear_to_lora_layers`, `build_schedule`, `evaluate` and
gradient checkpointing. The loop itself is ours (`lem.train_loop`), because mlx-lm's
`train()` cannot resume: it saves no optimizer state, draws its data order from NumPy's
global RNG (which its own evaluation also consumes) and keeps no best adapter. Here the
batch at every step is a pure function of (seed, step), dropout is re-seeded per step,
and checkpoints hold adapter + optimizer state, so a killed run resumed from its last
checkpoint ends with the same adapter as one that never stopped. Under `mlx.launch` the
same loop trains data-parallel over several processes (see `lem.train_loop`).

Output directory: adapter/ (last), adapter-best/ (lowest validation loss), checkpoints/,
metrics.jsonl, loss.png, settings.json, manifest.json, and model/ (fused) unless told not.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TextIO

from lem.config import check, setting, to_dict
from lem.errors import LemError
from lem.store import Manifest, check_output_dir, sha256_file, sha256_tree, write_json
from lem.train_data import Example, read_splits, tokenize
from lem.train_files import ADAPTER_CONFIG, ADAPTER_FILE, plot_losses, prepare_out

# Settings that do not change the trained weights: a run may be resumed with them changed.
COSMETIC = {"model", "data", "out", "fuse", "fuse_best", "dequantize", "export_gguf"}
COSMETIC |= {"steps_per_report"}
COSMETIC |= {"save_every", "keep_checkpoints", "resume_adapter"}  # its hash is an input


@dataclass
class TrainSettings:
    """Everything that shapes a training run; defaults follow the LEM reference method.

    `epochs`, when set, replaces `iters` (steps = epochs x examples // batch_size).
    `lora_alpha`, when set, replaces `lora_scale` with alpha / rank (the PEFT convention).
    `resume_adapter` starts from an earlier stage's adapter (same type, rank, layers, scale).
    `dequantize` and `export_gguf` apply to the fused model.
    """

    model: str | None = setting(None, "Base model: MLX directory, hub id or pypi:<name>")
    data: Path = setting(Path("training"), "Directory with train.jsonl and valid.jsonl")
    out: Path = setting(Path("runs/train"), "Output directory")
    fine_tune_type: str = setting("lora", "Fine-tune type", choices=("lora", "dora", "full"))
    iters: int = setting(200, "Optimizer steps", min=1)
    epochs: int | None = setting(None, "Full passes over train.jsonl (replaces --iters)", min=1)
    batch_size: int = setting(2, "Examples per step (the global batch)", min=1)
    learning_rate: float = setting(1e-5, "Peak learning rate", gt=0)
    lr_schedule: str = setting(
        "constant", "Decay after warmup", choices=("constant", "cosine", "linear")
    )
    warmup: int = setting(0, "Linear warmup steps before the schedule", min=0)
    min_learning_rate: float = setting(0.0, "End of the cosine/linear decay", min=0)
    optimizer: str = setting("adam", "Optimizer", choices=("adam", "adamw"))
    num_layers: int = setting(16, "Top layers to train, -1 for all", min=1, special=(-1,))
    lora_rank: int = setting(8, "LoRA/DoRA rank", min=1)
    lora_scale: float = setting(20.0, "LoRA scale, mlx-lm's convention", gt=0)
    lora_alpha: float | None = setting(None, "Sets scale = alpha / rank (PEFT convention)", gt=0)
    lora_dropout: float = setting(0.0, "LoRA dropout", min=0, below=1)
    mask_prompt: bool = setting(True, "Train the assistant turns only")
    max_seq_length: int = setting(2048, "Longest example in tokens", min=2)
    truncate: bool = setting(False, "Cut longer examples instead of refusing them")
    grad_checkpoint: bool = setting(False, "Recompute activations to save memory")
    steps_per_report: int = setting(10, "Steps between progress lines", min=1)
    steps_per_eval: int = setting(50, "Steps between validation losses", min=1)
    val_batches: int = setting(25, "Validation batches, -1 for all", min=1, special=(-1,))
    save_every: int = setting(50, "Steps between checkpoints", min=1)
    keep_checkpoints: int = setting(2, "Checkpoints kept, 0 for all", min=0)
    seed: int = setting(0, "LoRA init, data order and dropout seed", min=0)
    resume_adapter: Path | None = setting(None, "Start from an earlier stage's adapter directory")
    fuse: bool = setting(True, "Fuse into OUT/model after training")
    fuse_best: bool = setting(
        True, "Fuse the adapter with the lowest validation loss (else the last one)"
    )
    dequantize: bool = setting(False, "Store a quantized base's fused weights unquantized")
    export_gguf: bool = setting(False, "Also write OUT/model/model.gguf", flag="--gguf")

    @property
    def scale(self) -> float:
        return self.lora_alpha / self.lora_rank if self.lora_alpha is not None else self.lora_scale


@dataclass
class TrainReport:
    """What a run did and where it put it."""

    out: Path
    adapter: Path
    best_adapter: Path
    model: Path | None
    steps: int
    seed: int
    first_train_loss: float | None
    final_train_loss: float | None
    final_val_loss: float | None
    best_val_loss: float | None
    best_step: int | None
    trained_tokens: int
    train_seconds: float
    tokens_per_second: float
    resumed_from: int | None
    processes: int = 1  # ranks of a distributed run
    fused: str | None = None  # which adapter went into model/: "adapter-best" or "adapter"
    wall_seconds: float = 0.0  # this invocation, loading and fusing included


def check_settings(s: TrainSettings) -> None:
    """Every field's rules (for settings built in Python), then what they cannot see."""
    check(s, "train")
    if not s.model:
        raise LemError("no base model: pass --model or set `model` in [train] of lem.toml")


def adapter_config(s: TrainSettings) -> dict:
    """The adapter_config.json that mlx-lm's load_adapters reads (plus what made it)."""
    return {
        "fine_tune_type": s.fine_tune_type,
        "num_layers": s.num_layers,
        "lora_parameters": {"rank": s.lora_rank, "scale": s.scale, "dropout": s.lora_dropout},
        "base_model": s.model,
        "seed": s.seed,
    }


def _check_stage(s: TrainSettings) -> Path | None:
    """The earlier stage's adapter file, after checking it has this run's shape."""
    if s.resume_adapter is None:
        return None
    path = Path(s.resume_adapter)
    if path.is_dir():
        path = path / ADAPTER_FILE
    config_path = path.parent / ADAPTER_CONFIG
    if not path.is_file() or not config_path.is_file():
        raise LemError(f"resume_adapter {s.resume_adapter}: no {ADAPTER_FILE} + {ADAPTER_CONFIG}")
    theirs = json.loads(config_path.read_text())
    ours = adapter_config(s)
    keys = ("fine_tune_type", "num_layers", "lora_parameters.rank", "lora_parameters.scale")
    for key in keys:
        a, b = (_dig(c, key) for c in (theirs, ours))
        if a != b and not (key.startswith("lora") and s.fine_tune_type == "full"):
            raise LemError(
                f"resume_adapter {s.resume_adapter}: trained with {key} {a!r}, this run has "
                f"{b!r}; set the same {key.split('.')[-1]} to continue from it"
            )
    return path


def _dig(d: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        d = d.get(part, {}) if isinstance(d, dict) else None
    return d if d != {} else None


def total_steps(s: TrainSettings, n_train: int) -> int:
    """Optimizer steps in the run: `iters`, or `epochs` full passes when set."""
    return s.epochs * (n_train // s.batch_size) if s.epochs is not None else s.iters


def make_trainable(model: Any, s: TrainSettings) -> None:
    """Freeze the base, then add LoRA/DoRA layers or unfreeze the top layers (full)."""
    from mlx_lm.tuner.utils import linear_to_lora_layers

    model.freeze()
    if s.fine_tune_type == "full":
        for layer in model.layers[-max(s.num_layers, 0) :]:
            layer.unfreeze()
        return
    params = adapter_config(s)["lora_parameters"]
    linear_to_lora_layers(model, s.num_layers, params, use_dora=s.fine_tune_type == "dora")


def make_optimizer(s: TrainSettings, steps: int) -> Any:
    """Adam(W) with the learning-rate schedule, built by mlx-lm's build_schedule."""
    import mlx.optimizers as optim
    from mlx_lm.tuner.utils import build_schedule

    decay = max(steps - s.warmup, 1)
    if s.lr_schedule == "cosine":
        spec = {"name": "cosine_decay", "arguments": [s.learning_rate, decay, s.min_learning_rate]}
    elif s.lr_schedule == "linear":
        spec = {
            "name": "linear_schedule",
            "arguments": [s.learning_rate, s.min_learning_rate, decay],
        }
    else:  # constant: a "linear" schedule from lr to lr, so warmup still applies
        spec = {"name": "linear_schedule", "arguments": [s.learning_rate, s.learning_rate, 1]}
    spec["warmup"] = s.warmup
    cls = optim.AdamW if s.optimizer == "adamw" else optim.Adam
    return cls(learning_rate=build_schedule(spec))


def masked_loss(model: Any, batch: Any, trained: Any) -> tuple[Any, Any]:
    """Mean cross-entropy over the trained tokens (`trained` marks them; see `collate`).

    Token t+1 is predicted from the tokens up to t, so the weights of the targets are
    `trained[:, 1:]`: no loss on the prompt, on other roles' turns or on padding (mlx-lm's
    default_loss trains one padding token per sequence).
    """
    import mlx.core as mx
    import mlx.nn as nn

    inputs, targets = batch[:, :-1], batch[:, 1:]
    logits = model(inputs)
    weights = trained[:, 1:]
    ce = nn.losses.cross_entropy(logits, targets) * weights
    ntoks = weights.sum()
    return ce.astype(mx.float32).sum() / ntoks, ntoks


@contextmanager
def grad_checkpointing(model: Any, enabled: bool) -> Iterator[None]:
    """mlx-lm's grad_checkpoint patches the layer class; undo it when training ends."""
    if not enabled:
        yield
        return
    from mlx_lm.tuner.trainer import grad_checkpoint

    cls = type(model.layers[0])
    original = cls.__call__
    grad_checkpoint(model.layers[0])
    try:
        yield
    finally:
        cls.__call__ = original


def size_text(gigabytes: float) -> str:
    return f"{gigabytes:.2f} GB" if gigabytes >= 1 else f"{gigabytes * 1000:.0f} MB"


# ---- the run -------------------------------------------------------------------------


@dataclass
class _Prepared:
    """A run's inputs, all checked: the loaded base, tokenized data and their hashes."""

    loaded: Any
    examples: dict[str, list[Example]]
    steps: int
    inputs: dict[str, str]
    base_path: Path
    stage_file: Path | None
    checkpoint: Path | None


def prepare(
    s: TrainSettings, resume: bool = False, writer: bool = True, processes: int = 1
) -> _Prepared:
    """Every check that bad input can fail, before anything is written or trained.

    `writer` is False on the ranks of a distributed run other than 0: they read the
    data and the model, and leave the output directory to rank 0. `processes`: the
    group's size; each process takes a share of every batch.
    """
    from lem.models import load_model, resolve_model_path

    check_settings(s)
    if s.batch_size < processes:
        raise LemError(
            f"batch_size {s.batch_size}: each of the {processes} processes needs at least "
            "one example per step; raise --batch-size (it is the global batch)"
        )
    splits = read_splits(s.data, s.batch_size)
    stage_file = _check_stage(s)
    checkpoint = prepare_out(Path(s.out), resume) if writer else None
    base_path = resolve_model_path(s.model)
    loaded = load_model(s.model, dequantize=True if s.fine_tune_type == "full" else None)
    layers = len(loaded.model.layers)
    if s.num_layers > layers:
        raise LemError(f"num_layers {s.num_layers}: the model has only {layers} layers")
    if not loaded.is_chat:
        raise LemError(f"model {s.model}: its tokenizer has no chat template to format `messages`")
    files = {name: Path(s.data) / f"{name}.jsonl" for name in splits}
    examples = {
        name: tokenize(
            rows, loaded.tokenizer, s.mask_prompt, s.max_seq_length, s.truncate, files[name]
        )
        for name, rows in splits.items()
    }
    inputs = {f.name: sha256_file(f) for f in files.values()}
    inputs["base_model"] = sha256_tree(base_path)
    if stage_file is not None:
        inputs["resume_adapter"] = sha256_file(stage_file)
    steps = total_steps(s, len(examples["train"]))
    return _Prepared(loaded, examples, steps, inputs, base_path, stage_file, checkpoint)


def train(
    settings: TrainSettings,
    resume: bool = False,
    callback: Any = None,
    stream: TextIO | None = None,
) -> TrainReport:
    """Fine-tune `settings.model` on `settings.data`, writing everything under `settings.out`.

    `resume` continues from the latest checkpoint in `out` (same settings and data).
    `callback` is an mlx-lm TrainingCallback (on_train_loss_report / on_val_loss_report).
    Progress goes to `stream` (stderr by default).
    """
    import mlx.core as mx

    from lem.distributed import rank0_locked

    s, out, started = settings, Path(settings.out), time.perf_counter()
    stream = stream if stream is not None else sys.stderr
    group = mx.distributed.init()
    with rank0_locked(group, out, check=lambda: check_output_dir(out)):
        return _train(s, out, started, stream, group, resume, callback)


def _train(s, out: Path, started: float, stream, group, resume: bool, callback) -> TrainReport:
    from lem import train_loop
    from lem.distributed import agree, broadcast_json, in_turn
    from lem.models import resolve_model_path

    writer = group.rank() == 0
    if s.model:  # a pypi: model is imported by one rank at a time (a shared cache)
        in_turn(group, lambda: resolve_model_path(s.model))
    p = agree(group, lambda: prepare(s, resume, writer, group.size()))
    if group.size() > 1:
        agree(group, partial(_same_inputs, broadcast_json(group, p.inputs), p.inputs, group.rank()))
    settings_dict = to_dict(s)
    fingerprint = {
        "settings": {k: v for k, v in settings_dict.items() if k not in COSMETIC},
        "inputs": p.inputs,
    }
    if writer:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "settings.json", settings_dict | {"processes": group.size()})
    run = train_loop.Run(
        s,
        p.loaded.model,
        make_optimizer(s, p.steps),
        p.examples["train"],
        p.examples["valid"],
        p.steps,
        out,
        stream,
        callback,
        fingerprint,
        adapter_config(s),
        group,
    )
    state = train_loop.start(run, p.stage_file, p.checkpoint, resume)
    state = train_loop.loop(run, state)
    report = _report(run, state)
    if not writer:
        return report
    plot_losses(out / "metrics.jsonl", out / "loss.png")
    if s.fuse:
        from lem.fuse import fuse

        print(f"train: fusing into {out / 'model'}", file=stream)
        base_hash = p.inputs["base_model"]
        adapter = report.best_adapter if s.fuse_best else report.adapter
        report.model = fuse(s.model, adapter, out / "model", s.dequantize, s.export_gguf, base_hash)
        report.fused = adapter.name
    report.wall_seconds = time.perf_counter() - started
    _write_manifest(s, p, report)
    return report


def _same_inputs(first: dict[str, str], mine: dict[str, str], rank: int) -> None:
    """Every rank trains on the files rank 0 trains on (each machine reads its own copy)."""
    differ = sorted(k for k in first.keys() | mine.keys() if first.get(k) != mine.get(k))
    if differ:
        raise LemError(
            f"rank {rank}: {', '.join(differ)} differ from rank 0's; every machine needs the "
            "same training data and base model at the same paths"
        )


def _report(run, state) -> TrainReport:
    return TrainReport(
        out=run.out,
        adapter=run.out / "adapter",
        best_adapter=run.out / "adapter-best",
        model=None,
        steps=run.steps,
        seed=run.s.seed,
        first_train_loss=state.first_train,
        final_train_loss=state.last_train,
        final_val_loss=state.last_val,
        best_val_loss=state.best_val,
        best_step=state.best_step,
        trained_tokens=int(state.trained_tokens),
        train_seconds=state.train_seconds,
        tokens_per_second=state.trained_tokens / state.train_seconds
        if state.train_seconds
        else 0.0,
        resumed_from=state.resumed_from,
        processes=run.world,
    )


def _write_manifest(s: TrainSettings, p: _Prepared, report: TrainReport) -> None:
    outputs = ("adapter", "adapter-best", "loss.png", "metrics.jsonl", "settings.json")
    Manifest(
        stage="train",
        inputs=p.inputs,
        settings=to_dict(s),
        outputs=dict.fromkeys(outputs, ""),
        counts={
            "train": len(p.examples["train"]),
            "valid": len(p.examples["valid"]),
            "steps": p.steps,
        },
        extra={
            "base_model": {
                "spec": s.model,
                "path": str(p.base_path),
                "sha256": p.inputs["base_model"],
            },
            "seed": s.seed,
            "report": {k: v for k, v in to_dict(report).items() if k != "out"},
        },
    ).write(report.out)
