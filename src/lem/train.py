"""`lem train`: LoRA, DoRA or full fine-tuning with mlx-lm's tuner, from Python.

mlx-lm supplies the pieces: `linear_to_lora_layers`, `ChatDataset` (prompt masking),
`build_schedule`, `evaluate` and gradient checkpointing. The loop itself is ours, because
mlx-lm's `train()` cannot resume: it saves no optimizer state, draws its data order from
NumPy's global RNG (which its own evaluation also consumes) and keeps no best adapter.
Here the batch at every step is a pure function of (seed, step), dropout is re-seeded
per step, and checkpoints hold adapter + optimizer state, so a killed run resumed from
its last checkpoint ends with the same adapter as one that never stopped.

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

from lem.config import to_dict
from lem.errors import LemError
from lem.progress import Progress
from lem.store import JsonlAppender, Manifest, sha256_file, sha256_tree, write_json
from lem.train_data import BatchPlan, Example, collate, read_splits, tokenize, validation_batches
from lem.train_files import (
    ADAPTER_CONFIG,
    ADAPTER_FILE,
    load_trainable,
    plot_losses,
    prepare_out,
    prune_checkpoints,
    restore_checkpoint,
    save_adapter,
    trim_metrics,
)

# Settings that do not change the trained weights: a run may be resumed with them changed.
COSMETIC = {"model", "data", "out", "fuse", "dequantize", "export_gguf", "steps_per_report"}
COSMETIC |= {"save_every", "keep_checkpoints", "resume_adapter"}  # its hash is an input


@dataclass
class TrainSettings:
    """Everything that shapes a training run; defaults follow the LEM reference method.

    `epochs`, when set, replaces `iters` (steps = epochs x examples // batch_size).
    `lora_alpha`, when set, replaces `lora_scale` with alpha / rank (the PEFT convention).
    `resume_adapter` starts from an earlier stage's adapter (same type, rank, layers, scale).
    `dequantize` and `export_gguf` apply to the fused model.
    """

    model: str | None = None
    data: Path = Path("training")
    out: Path = Path("runs/train")
    fine_tune_type: str = "lora"  # lora | dora | full
    iters: int = 200
    epochs: int | None = None
    batch_size: int = 2
    learning_rate: float = 1e-5
    lr_schedule: str = "constant"  # constant | cosine | linear (decay after warmup)
    warmup: int = 0
    min_learning_rate: float = 0.0
    optimizer: str = "adam"  # adam | adamw
    num_layers: int = 16  # -1: all layers
    lora_rank: int = 8
    lora_scale: float = 20.0
    lora_alpha: float | None = None
    lora_dropout: float = 0.0
    mask_prompt: bool = True
    max_seq_length: int = 2048
    truncate: bool = False
    grad_checkpoint: bool = False
    steps_per_report: int = 10
    steps_per_eval: int = 50
    val_batches: int = 25  # -1: the whole validation set
    save_every: int = 50
    keep_checkpoints: int = 2  # 0: keep all
    seed: int = 0
    resume_adapter: Path | None = None
    fuse: bool = True
    dequantize: bool = False
    export_gguf: bool = False

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
    wall_seconds: float = 0.0  # this invocation, loading and fusing included


def check_settings(s: TrainSettings) -> None:
    """One-line errors for settings that cannot work, before anything is loaded."""
    choices = {
        "fine_tune_type": ("lora", "dora", "full"),
        "lr_schedule": ("constant", "cosine", "linear"),
        "optimizer": ("adam", "adamw"),
    }
    for name, allowed in choices.items():
        if getattr(s, name) not in allowed:
            raise LemError(f"{name} {getattr(s, name)!r}: expected one of {', '.join(allowed)}")
    if not s.model:
        raise LemError("no base model: pass --model or set `model` in [train] of lem.toml")
    positive = ["iters", "batch_size", "lora_rank", "max_seq_length", "steps_per_report"]
    positive += ["steps_per_eval", "save_every"]
    for name in positive + (["epochs"] if s.epochs is not None else []):
        if getattr(s, name) < 1:
            raise LemError(f"{name} must be at least 1, got {getattr(s, name)}")
    if s.learning_rate <= 0 or min(s.warmup, s.keep_checkpoints, s.seed) < 0:
        raise LemError("learning_rate must be > 0; warmup, keep_checkpoints and seed >= 0")
    if s.val_batches == 0 or s.val_batches < -1 or s.num_layers == 0 or s.num_layers < -1:
        raise LemError("val_batches and num_layers must be at least 1, or -1 for all")
    if not 0.0 <= s.lora_dropout < 1.0:
        raise LemError(f"lora_dropout must be in [0, 1), got {s.lora_dropout}")


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


def masked_loss(model: Any, batch: Any, spans: Any) -> tuple[Any, Any]:
    """Mean cross-entropy over the trained tokens (positions offset..length-1).

    mlx-lm's default_loss uses `steps <= length`, which also trains one padding token
    per sequence; `<` keeps the loss on the real tokens only.
    """
    import mlx.core as mx
    import mlx.nn as nn

    inputs, targets = batch[:, :-1], batch[:, 1:]
    logits = model(inputs)
    steps = mx.arange(1, targets.shape[1] + 1)
    mask = mx.logical_and(steps >= spans[:, 0:1], steps < spans[:, 1:])
    ce = nn.losses.cross_entropy(logits, targets) * mask
    ntoks = mask.sum()
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


def _size(gigabytes: float) -> str:
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


def prepare(s: TrainSettings, resume: bool = False) -> _Prepared:
    """Every check that bad input can fail, before anything is written or trained."""
    from lem.models import load_model, resolve_model_path

    check_settings(s)
    splits = read_splits(s.data, s.batch_size)
    stage_file = _check_stage(s)
    checkpoint = prepare_out(Path(s.out), resume)
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
    s, out, started = settings, Path(settings.out), time.perf_counter()
    stream = stream if stream is not None else sys.stderr
    p = prepare(s, resume)
    settings_dict = to_dict(s)
    fingerprint = {
        "settings": {k: v for k, v in settings_dict.items() if k not in COSMETIC},
        "inputs": p.inputs,
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "settings.json", settings_dict)
    run = _Run(s, p.loaded.model, p.examples, p.steps, fingerprint, out, stream, callback)
    run.setup(p.stage_file, p.checkpoint)
    report = run.loop()
    plot_losses(out / "metrics.jsonl", out / "loss.png")
    if s.fuse:
        from lem.fuse import fuse

        print(f"train: fusing into {out / 'model'}", file=stream)
        base_hash = p.inputs["base_model"]
        report.model = fuse(
            s.model, report.adapter, out / "model", s.dequantize, s.export_gguf, base_hash
        )
    report.wall_seconds = time.perf_counter() - started
    _write_manifest(s, p, report)
    return report


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


class _Run:
    """One training run's state: model, optimizer, plan, counters and output files."""

    def __init__(self, s, model, examples, steps, fingerprint, out, stream, callback):
        self.s, self.model, self.steps, self.out = s, model, steps, out
        self.fingerprint, self.stream, self.callback = fingerprint, stream, callback
        self.train_set, self.val_set = examples["train"], examples["valid"]
        self.plan = BatchPlan(self.train_set, s.batch_size, s.seed)
        self.val_plan = validation_batches(self.val_set, s.batch_size, s.seed, s.val_batches)
        self.start = 0
        self.counters = {"best_val": None, "best_step": None, "trained_tokens": 0}
        self.counters |= {
            "train_seconds": 0.0,
            "first_train": None,
            "last_train": None,
            "last_val": None,
        }
        self.resumed_from: int | None = None

    def setup(self, stage_file: Path | None, ckpt: Path | None) -> None:
        import mlx.core as mx

        mx.random.seed(self.s.seed)  # LoRA initialisation draws from it
        make_trainable(self.model, self.s)
        if stage_file is not None:
            load_trainable(self.model, stage_file)
        self.optimizer = make_optimizer(self.s, self.steps)
        self.optimizer.init(self.model.trainable_parameters())
        if ckpt is not None:
            state = restore_checkpoint(ckpt, self.model, self.optimizer, self.fingerprint)
            self.start = self.resumed_from = state["step"]
            self.counters.update(state["counters"])
            trim_metrics(self.out / "metrics.jsonl", self.start)
        elif (self.out / "metrics.jsonl").exists():
            (self.out / "metrics.jsonl").unlink()

    def evaluate(self) -> float:
        from mlx_lm.tuner.trainer import evaluate

        def batches(**_: Any) -> Iterator:
            for group in self.val_plan:
                yield collate([self.val_set[i] for i in group], self.s.max_seq_length)

        loss = evaluate(
            self.model, None, self.s.batch_size, -1, loss=masked_loss, iterate_batches=batches
        )
        self.model.train()
        return loss

    def loop(self) -> TrainReport:
        import mlx.core as mx
        import mlx.nn as nn

        s, model = self.s, self.model
        loss_and_grad = nn.value_and_grad(model, masked_loss)
        state = [model.state, self.optimizer.state, mx.random.state]

        @partial(mx.compile, inputs=state, outputs=state)
        def step(batch, spans):
            (loss, toks), grad = loss_and_grad(model, batch, spans)
            self.optimizer.update(model, grad)
            return loss, toks

        progress = Progress("train", self.steps, done=self.start, stream=self.stream, interval=0)
        metrics = JsonlAppender(self.out / "metrics.jsonl")
        window = {"loss": 0.0, "tokens": 0, "seconds": 0.0, "steps": 0}
        model.train()
        with metrics, grad_checkpointing(model, s.grad_checkpoint):
            if self.start == 0:
                self._validate(0, metrics)
            for it in range(self.start + 1, self.steps + 1):
                tic = time.perf_counter()
                mx.random.seed(s.seed * 1_000_003 + it)  # dropout masks depend on (seed, step) only
                batch = collate(
                    [self.train_set[i] for i in self.plan.indices(it - 1)], s.max_seq_length
                )
                loss, toks = step(*batch)
                mx.eval(state, loss, toks)
                window["seconds"] += time.perf_counter() - tic
                window["loss"] += loss.item()
                window["tokens"] += toks.item()
                window["steps"] += 1
                if it % s.steps_per_report == 0 or it == self.steps:
                    self._report(it, window, metrics, progress)
                    window = dict.fromkeys(window, 0)
                if it % s.steps_per_eval == 0 or it == self.steps:
                    self._validate(it, metrics)
                if it % s.save_every == 0 or it == self.steps:
                    self._checkpoint(it)
        progress.close()
        save_adapter(model, adapter_config(s), self.out / "adapter")
        return self._report_final()

    def _report(self, it: int, w: dict, metrics: JsonlAppender, progress: Progress) -> None:
        import mlx.core as mx

        c = self.counters
        loss = w["loss"] / w["steps"]
        c["first_train"] = loss if c["first_train"] is None else c["first_train"]
        c["last_train"] = loss
        c["trained_tokens"] += w["tokens"]
        c["train_seconds"] += w["seconds"]
        info = {
            "iteration": it,
            "train_loss": loss,
            "learning_rate": self.optimizer.learning_rate.item(),
            "iterations_per_second": w["steps"] / w["seconds"],
            "tokens_per_second": w["tokens"] / w["seconds"],
            "trained_tokens": c["trained_tokens"],
            "peak_memory": mx.get_peak_memory() / 1e9,
        }
        metrics.write({"step": it, **{k: v for k, v in info.items() if k != "iteration"}})
        note = f"loss {loss:.3f}  {info['tokens_per_second']:.0f} trained tok/s  "
        note += f"lr {info['learning_rate']:.2e}  peak memory {_size(info['peak_memory'])}"
        progress.update(w["steps"], note=note)
        if self.callback is not None:
            self.callback.on_train_loss_report(info)

    def _validate(self, it: int, metrics: JsonlAppender) -> None:
        c = self.counters
        tic = time.perf_counter()
        val = self.evaluate()
        seconds = time.perf_counter() - tic
        c["last_val"] = val
        best = c["best_val"] is None or val < c["best_val"]
        if best:
            c["best_val"], c["best_step"] = val, it
            save_adapter(
                self.model,
                adapter_config(self.s),
                self.out / "adapter-best",
                {"best.json": {"step": it, "val_loss": val}},
            )
        metrics.write({"step": it, "val_loss": val, "val_seconds": seconds})
        print(
            f"train: step {it}  val loss {val:.3f}{'  (best so far)' if best else ''}",
            file=self.stream,
        )
        if self.callback is not None:
            self.callback.on_val_loss_report(
                {"iteration": it, "val_loss": val, "val_time": seconds}
            )

    def _checkpoint(self, it: int) -> None:
        from mlx.utils import tree_flatten

        state = {"step": it, "counters": self.counters, "fingerprint": self.fingerprint}
        extra = {
            "optimizer.safetensors": dict(tree_flatten(self.optimizer.state)),
            "state.json": state,
        }
        save_adapter(
            self.model, adapter_config(self.s), self.out / "checkpoints" / f"step-{it:07d}", extra
        )
        save_adapter(self.model, adapter_config(self.s), self.out / "adapter")
        prune_checkpoints(self.out, self.s.keep_checkpoints)

    def _report_final(self) -> TrainReport:
        c = self.counters
        return TrainReport(
            out=self.out,
            adapter=self.out / "adapter",
            best_adapter=self.out / "adapter-best",
            model=None,
            steps=self.steps,
            seed=self.s.seed,
            first_train_loss=c["first_train"],
            final_train_loss=c["last_train"],
            final_val_loss=c["last_val"],
            best_val_loss=c["best_val"],
            best_step=c["best_step"],
            trained_tokens=int(c["trained_tokens"]),
            train_seconds=c["train_seconds"],
            tokens_per_second=c["trained_tokens"] / c["train_seconds"]
            if c["train_seconds"]
            else 0.0,
            resumed_from=self.resumed_from,
        )
