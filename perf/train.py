"""Training throughput: `lem train`'s loop (in-process) vs `python -m mlx_lm lora` (subprocess).

Same model (SmolLM2-135M-Instruct, float32, via lem.fetch), same data (tests/fixtures/chat),
same settings (LoRA rank 8 on 16 layers, batch 2, lr 1e-5, prompt masking, seed 0), in one
run. mlx-lm's own CLI does not import lem, so it gets the OpenBLAS fast path through
LD_PRELOAD instead. The first epoch is warm-up (every batch shape is compiled once); the
figures cover the epochs after it, which both tools train on the same batches (sorted by
length, paired; only the order differs).

Counting: "trained tokens" are the answer tokens in the loss. mlx-lm's loss mask also
counts one padding position per sequence (`steps <= length`), so its own tok/s is shown
and also converted to lem's count for the comparison. MFU = 6 x P x input tokens/s /
peak, where P is every parameter (trainable + frozen) and input tokens are all tokens of
each sequence (prompt + answer, no padding); peak is lem.blas.measure_gflops().
Usage: python perf/train.py [--epochs 2]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lem  # noqa: F401  (first: the OpenBLAS fast path must load before mlx)

DATA = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "chat"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
REPORT = re.compile(r"^\s*(\d+)\s+([\d.]+)\s+[▼▲]\s+([\d,]+)\s+[\d.]+k\s*$")
COMMON = {"batch_size": 2, "num_layers": 16, "learning_rate": 1e-5, "seed": 0}


def blas_path() -> str:
    """The file of the BLAS library lem preloaded into this process (for LD_PRELOAD)."""
    from lem import blas

    name = blas.state().library
    if name is None:
        raise SystemExit("no optimized BLAS loaded: install libopenblas0-pthread first")
    for line in Path("/proc/self/maps").read_text().splitlines():
        if Path(name).name.split(".so")[0] in line and ".so" in line:
            return line.split()[-1]
    return name


def epoch_tokens(model: Path) -> tuple[int, int, int]:
    """(answer tokens, all tokens, sequences) in one epoch of the training file."""
    from mlx_lm.utils import load_tokenizer

    from lem.train_data import read_splits, tokenize

    rows = read_splits(DATA, COMMON["batch_size"])["train"]
    examples = tokenize(rows, load_tokenizer(model), True, 2048, False, DATA / "train.jsonl")
    answer = sum(len(e.tokens) - e.offset for e in examples)
    return answer, sum(len(e.tokens) for e in examples), len(examples)


def run_mlx_lm(model: Path, iters: int, per_epoch: int, work: Path) -> list[float]:
    """tok/s (mlx-lm's own count) of each report window after the first."""
    cmd = [sys.executable, "-m", "mlx_lm", "lora", "--model", str(model), "--train"]
    cmd += ["--data", str(DATA), "--iters", str(iters), "--mask-prompt"]
    cmd += ["--batch-size", str(COMMON["batch_size"]), "--num-layers", str(COMMON["num_layers"])]
    cmd += ["--learning-rate", str(COMMON["learning_rate"]), "--seed", str(COMMON["seed"])]
    cmd += ["--steps-per-report", str(per_epoch), "--steps-per-eval", str(iters + 1)]
    cmd += ["--val-batches", "1", "--save-every", str(iters + 1)]
    cmd += ["--adapter-path", str(work / "mlx_lm_adapter")]
    env = dict(os.environ, LD_PRELOAD=blas_path())
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"mlx_lm lora failed:\n{done.stderr[-3000:]}")
    rates = [float(m[3].replace(",", "")) for m in map(REPORT.match, _lines(done.stdout)) if m]
    if len(rates) != iters // per_epoch:
        raise SystemExit(f"could not read mlx_lm's report lines:\n{done.stdout[-3000:]}")
    return rates[1:]


def _lines(text: str) -> list[str]:
    return [ANSI.sub("", line) for line in text.splitlines()]


def run_lem(model: Path, iters: int, per_epoch: int, work: Path) -> list[float]:
    """Seconds of each report window after the first (training steps only)."""
    import json

    from lem.train import TrainSettings, train

    out = work / "lem"
    settings = TrainSettings(
        model=str(model),
        data=DATA,
        out=out,
        iters=iters,
        steps_per_report=per_epoch,
        steps_per_eval=iters,
        val_batches=1,
        save_every=iters,
        fuse=False,
        **COMMON,
    )
    train(settings, stream=open(os.devnull, "w"))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    windows = [r for r in rows if "train_loss" in r]
    return [per_epoch / r["iterations_per_second"] for r in windows[1:]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="measured epochs after warm-up")
    args = parser.parse_args()

    from mlx.utils import tree_flatten

    from lem.blas import measure_gflops
    from lem.fetch import fetch_model
    from lem.models import load_model

    model = fetch_model()
    answer, total, sequences = epoch_tokens(model)
    per_epoch = sequences // COMMON["batch_size"]
    iters = per_epoch * (1 + args.epochs)
    params = sum(v.size for _, v in tree_flatten(load_model(model).model.parameters()))
    peak = measure_gflops()
    work = Path(tempfile.mkdtemp(prefix="lem-perf-train-"))
    try:
        tic = time.perf_counter()
        mlx_rates = run_mlx_lm(model, iters, per_epoch, work)
        mlx_wall = time.perf_counter() - tic
        tic = time.perf_counter()
        lem_seconds = run_lem(model, iters, per_epoch, work)
        lem_wall = time.perf_counter() - tic
    finally:
        shutil.rmtree(work)

    # mlx-lm counts answer + one padding target per sequence; its window time follows.
    mlx_seconds = [(answer + sequences) / rate for rate in mlx_rates]
    rows = [
        ("lem train (in-process)", sum(lem_seconds), None, lem_wall),
        ("python -m mlx_lm lora", sum(mlx_seconds), sum(mlx_rates) / len(mlx_rates), mlx_wall),
    ]
    epochs = args.epochs
    print(f"model: {model.name}, {params / 1e6:.1f}M parameters (P), float32")
    print(f"data: {sequences} sequences/epoch, {answer} answer tokens, {total} tokens in all")
    print(
        f"settings: LoRA rank 8, 16 layers, batch 2, {iters} steps; measured: last {epochs} epochs"
    )
    print(f"matmul peak (lem.blas.measure_gflops): {peak:.1f} GFLOPS")
    print(
        "mlx_lm runs as a subprocess with LD_PRELOAD of the same OpenBLAS (it does not import lem)"
    )
    print()
    print(f"{'tool':<24}{'s/step':>8}{'trained tok/s':>15}{'own count':>11}{'MFU':>8}{'wall s':>8}")
    for name, seconds, own, wall in rows:
        steps = epochs * per_epoch
        trained = answer * epochs / seconds
        flops = 6 * params * total * epochs / seconds
        own_text = "" if own is None else f"{own:.1f}"
        print(
            f"{name:<24}{seconds / steps:>8.2f}{trained:>15.1f}{own_text:>11}"
            f"{flops / (peak * 1e9):>8.1%}{wall:>8.0f}"
        )
    ratio = sum(mlx_seconds) / sum(lem_seconds)
    print(f"\nlem / mlx_lm throughput: {ratio:.2f}x (above 1: lem is faster)")
    print("MFU = 6 x P x (input tokens/s) / peak; input tokens = prompt + answer, no padding.")
    print("trained tok/s uses lem's count (answer tokens); 'own count' is mlx_lm's figure,")
    print("which adds one padding target per sequence. Wall s includes loading and evaluation.")


if __name__ == "__main__":
    main()
