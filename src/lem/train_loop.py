"""The training loop: a flat loop over a `RunState`, the counters a checkpoint saves.

Every step's batch is a pure function of (seed, step) (`BatchPlan`), dropout is re-seeded
per step, and a checkpoint holds the adapter, the optimizer state and the RunState, so a
run resumed from its last checkpoint ends with the same adapter as one that never stopped.

Across processes (started by `mlx.launch`, see `lem.distributed`), each rank trains on
its share of every global batch (examples rank, rank + N, ...): its loss is the sum over
its trained tokens divided by the global token count, so the sum of the ranks' gradients
(an all-sum) is exactly the gradient of the global batch's mean loss, the same as one
process computes, up to floating-point order. Validation batches are shared out the same
way and summed. Only rank 0 writes: metrics, checkpoints, adapters, progress. A resumed
run reads the checkpoint on rank 0 and sends it to the other ranks.
"""

from __future__ import annotations

import io
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, TextIO

from lem.progress import Progress
from lem.store import JsonlAppender
from lem.train_data import BatchPlan, Example, collate, validation_batches
from lem.train_files import (
    load_trainable,
    prune_checkpoints,
    restore_checkpoint,
    save_adapter,
    trim_metrics,
)


@dataclass
class RunState:
    """Where a run is and what it has seen; saved in every checkpoint."""

    step: int = 0
    best_val: float | None = None
    best_step: int | None = None
    trained_tokens: int = 0
    train_seconds: float = 0.0
    first_train: float | None = None
    last_train: float | None = None
    last_val: float | None = None
    resumed_from: int | None = None

    def counters(self) -> dict:
        body = asdict(self)
        del body["step"], body["resumed_from"]
        return body


@dataclass
class Run:
    """What the loop works with (not its state): settings, model, data, files, the group."""

    s: Any  # TrainSettings
    model: Any
    optimizer: Any
    train_set: list[Example]
    val_set: list[Example]
    steps: int
    out: Path
    stream: TextIO
    callback: Any
    fingerprint: dict
    config: dict  # adapter_config.json
    group: Any  # mx.distributed group (size 1 for a single process)

    @property
    def rank(self) -> int:
        return self.group.rank()

    @property
    def world(self) -> int:
        return self.group.size()

    @property
    def writer(self) -> bool:
        return self.rank == 0


def all_sum(run: Run, x: Any) -> Any:
    """The sum of `x` over the group's ranks (itself in a single process)."""
    import mlx.core as mx

    return mx.distributed.all_sum(x, group=run.group) if run.world > 1 else x


def broadcast(run: Run, tree: Any) -> Any:
    """Rank 0's values of every array in `tree`, on every rank (other ranks send zeros)."""
    import mlx.core as mx
    from mlx.utils import tree_map

    if run.world == 1:
        return tree
    return tree_map(lambda x: all_sum(run, x if run.writer else mx.zeros_like(x)), tree)


def start(run: Run, stage_file: Path | None, ckpt: Path | None, resume: bool) -> RunState:
    """Trainable layers, optimizer state and RunState: fresh, from a stage, or (with
    `resume`) from the checkpoint `ckpt`, which rank 0 reads and sends to the others."""
    import mlx.core as mx

    from lem.distributed import agree
    from lem.train import make_trainable

    mx.random.seed(run.s.seed)  # LoRA initialisation draws from it
    make_trainable(run.model, run.s)
    if stage_file is not None:
        load_trainable(run.model, stage_file)
    run.optimizer.init(run.model.trainable_parameters())
    state = agree(run.group, lambda: _restore(run, ckpt))
    if run.world > 1:
        _share_start(run, state, resuming=resume)
    return state


def _restore(run: Run, ckpt: Path | None) -> RunState:
    """Rank 0: the checkpoint's weights, optimizer state and RunState (or a fresh start)."""
    if not run.writer:
        return RunState()
    if ckpt is None:
        if (run.out / "metrics.jsonl").exists():
            (run.out / "metrics.jsonl").unlink()
        return RunState()
    saved = restore_checkpoint(ckpt, run.model, run.optimizer, run.fingerprint)
    trim_metrics(run.out / "metrics.jsonl", saved["step"])
    return RunState(step=saved["step"], resumed_from=saved["step"], **saved["counters"])


def _share_start(run: Run, state: RunState, resuming: bool) -> None:
    """Give every rank rank 0's weights, and after a resume its optimizer state and RunState."""
    import mlx.core as mx

    from lem.distributed import broadcast_json

    run.model.update(broadcast(run, run.model.trainable_parameters()))
    if resuming:
        run.optimizer.state = broadcast(run, run.optimizer.state)
        for key, value in broadcast_json(run.group, asdict(state)).items():
            setattr(state, key, value)
    mx.eval(run.model.parameters(), run.optimizer.state)


def local_loss(model: Any, batch: Any, trained: Any, total: Any) -> tuple[Any, Any]:
    """This rank's share of the global batch's mean loss: its summed cross-entropy over the
    global count of trained tokens (`total`); and its own count of trained tokens."""
    import mlx.core as mx
    import mlx.nn as nn

    inputs, targets = batch[:, :-1], batch[:, 1:]
    weights = trained[:, 1:]
    ce = nn.losses.cross_entropy(model(inputs), targets) * weights
    return ce.astype(mx.float32).sum() / total, weights.sum()


def evaluate(run: Run) -> float:
    """Validation loss over the fixed validation batches, shared out across ranks: the
    summed cross-entropy over the summed count of trained tokens, as one process sums them."""
    import mlx.core as mx

    from lem.train import masked_loss

    plan = validation_batches(run.val_set, run.s.batch_size, run.s.seed, run.s.val_batches)
    run.model.eval()
    total, tokens = mx.array(0.0), mx.array(0.0)
    for group in plan[run.rank :: run.world]:
        batch, trained = collate([run.val_set[i] for i in group], run.s.max_seq_length)
        loss, toks = masked_loss(run.model, batch, trained)
        total, tokens = total + loss * toks, tokens + toks
        mx.eval(total, tokens)
    total, tokens = all_sum(run, mx.stack([total, tokens]))
    run.model.train()
    return (total / tokens).item()


def loop(run: Run, state: RunState) -> RunState:
    """Train from `state.step` to `run.steps`; report, validate and checkpoint on schedule."""
    import mlx.core as mx
    import mlx.nn as nn
    from mlx.utils import tree_map

    s, model = run.s, run.model
    loss_and_grad = nn.value_and_grad(model, local_loss)
    compiled = [model.state, run.optimizer.state, mx.random.state]

    @partial(mx.compile, inputs=compiled, outputs=compiled)
    def step(batch, trained, total):
        (loss, toks), grad = loss_and_grad(model, batch, trained, total)
        if run.world > 1:
            grad = tree_map(lambda g: mx.distributed.all_sum(g, group=run.group), grad)
        run.optimizer.update(model, grad)
        return loss, toks

    plan = BatchPlan(run.train_set, s.batch_size, s.seed)
    stream = run.stream if run.writer else io.StringIO()  # rank 0 speaks for the group
    progress = Progress("train", run.steps, done=state.step, stream=stream, interval=0)
    window = {"loss": 0.0, "tokens": 0, "seconds": 0.0, "steps": 0}
    metrics = JsonlAppender(run.out / "metrics.jsonl") if run.writer else None
    model.train()
    with _closing(metrics), _checkpointing(model, s.grad_checkpoint):
        if state.step == 0:
            validate(run, state, 0, metrics)
        for it in range(state.step + 1, run.steps + 1):
            tic = time.perf_counter()
            # Dropout masks depend on (seed, step, rank) only; each rank draws its own.
            mx.random.seed((s.seed * 1_000_003 + it) * run.world + run.rank)
            mine = plan.indices(it - 1)[run.rank :: run.world]
            batch, trained = collate([run.train_set[i] for i in mine], s.max_seq_length)
            total = all_sum(run, trained[:, 1:].sum())
            loss, toks = step(batch, trained, total)
            loss, toks = all_sum(run, loss), all_sum(run, toks)
            mx.eval(compiled, loss, toks)
            window["seconds"] += time.perf_counter() - tic
            window["loss"] += loss.item()
            window["tokens"] += toks.item()
            window["steps"] += 1
            state.step = it
            if it % s.steps_per_report == 0 or it == run.steps:
                report(run, state, window, metrics, progress)
                window = dict.fromkeys(window, 0)
            if it % s.steps_per_eval == 0 or it == run.steps:
                validate(run, state, it, metrics)
            if it % s.save_every == 0 or it == run.steps:
                checkpoint(run, state)
    progress.close()
    if run.writer:
        save_adapter(model, run.config, run.out / "adapter")
    return state


class _closing:
    def __init__(self, appender: JsonlAppender | None):
        self.appender = appender

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        if self.appender is not None:
            self.appender.close()


def _checkpointing(model: Any, enabled: bool):
    from lem.train import grad_checkpointing

    return grad_checkpointing(model, enabled)


def report(run: Run, state: RunState, w: dict, metrics, progress: Progress) -> None:
    """A progress line and a metrics record for the steps since the last report."""
    import mlx.core as mx

    from lem.train import size_text

    loss = w["loss"] / w["steps"]
    state.first_train = loss if state.first_train is None else state.first_train
    state.last_train = loss
    state.trained_tokens += int(w["tokens"])
    state.train_seconds += w["seconds"]
    info = {
        "iteration": state.step,
        "train_loss": loss,
        "learning_rate": run.optimizer.learning_rate.item(),
        "iterations_per_second": w["steps"] / w["seconds"],
        "tokens_per_second": w["tokens"] / w["seconds"],
        "trained_tokens": state.trained_tokens,
        "peak_memory": mx.get_peak_memory() / 1e9,
    }
    if not run.writer:
        return
    metrics.write({"step": state.step, **{k: v for k, v in info.items() if k != "iteration"}})
    note = f"loss {loss:.3f}  {info['tokens_per_second']:.0f} trained tok/s  "
    note += f"lr {info['learning_rate']:.2e}  peak memory {size_text(info['peak_memory'])}"
    if run.world > 1:
        note += f"  ({run.world} processes)"
    progress.update(w["steps"], note=note)
    if run.callback is not None:
        run.callback.on_train_loss_report(info)


def validate(run: Run, state: RunState, it: int, metrics) -> None:
    """Validation loss now; the best adapter so far is kept in adapter-best/."""
    tic = time.perf_counter()
    val = evaluate(run)
    seconds = time.perf_counter() - tic
    state.last_val = val
    best = state.best_val is None or val < state.best_val
    if best:
        state.best_val, state.best_step = val, it
    if not run.writer:
        return
    if best:
        save_adapter(
            run.model,
            run.config,
            run.out / "adapter-best",
            {"best.json": {"step": it, "val_loss": val}},
        )
    metrics.write({"step": it, "val_loss": val, "val_seconds": seconds})
    mark = "  (best so far)" if best else ""
    print(f"train: step {it}  val loss {val:.3f}{mark}", file=run.stream)
    if run.callback is not None:
        run.callback.on_val_loss_report({"iteration": it, "val_loss": val, "val_time": seconds})


def checkpoint(run: Run, state: RunState) -> None:
    """Adapter + optimizer state + RunState under checkpoints/step-N, and the last adapter."""
    from mlx.utils import tree_flatten

    if not run.writer:
        return
    body = {"step": state.step, "counters": state.counters(), "fingerprint": run.fingerprint}
    extra = {
        "optimizer.safetensors": dict(tree_flatten(run.optimizer.state)),
        "state.json": body,
    }
    target = run.out / "checkpoints" / f"step-{state.step:07d}"
    save_adapter(run.model, run.config, target, extra)
    save_adapter(run.model, run.config, run.out / "adapter")
    prune_checkpoints(run.out, run.s.keep_checkpoints)
