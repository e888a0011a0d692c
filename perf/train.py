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
from pathlib import Path

import lem  # noqa: F401  (first: the OpenBLAS fast path must load before mlx)

DATA = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "chat"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
REPORT = re.compile(r"^\s*(\d+)\s+([\d.]+)\s+[▼▲]\s+([\d,]+)\s+[\d.]+k\s*$")
COMMON = {"batch_size": 2, "num_layers": 16, "learning_rate": 1e-5, "seed": 0}


def blas_path() -> str:
    """The file of the BLAS library lem preloaded into this process (for LD_PRELOAD)."""
    from lem.serve import blas_file

    path = blas_file()
    if path is None:
        raise SystemExit("no optimized BLAS loaded: install libopenblas0-pthread first")
    return path


def epoch_tokens(model: Path) -> tuple[int, int, int]:
    """(answer tokens, all tokens, sequences) in one epoch of the training file."""
    from mlx_lm.utils import load_tokenizer

    from lem.train_data import read_splits, tokenize

    rows = read_splits(DATA, COMMON["batch_size"])["train"]
    examples = tokenize(rows, load_tokenizer(model), True, 2048, False, DATA / "train.jsonl")
    answer = sum(e.trained for e in examples)
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


def measure(model: Path, iters: int, per_epoch: int, repeats: int) -> dict[str, list[float]]:
    """Seconds of the measured epochs and mlx-lm's own tok/s, each tool `repeats` times.

    The order alternates (mlx_lm first, then lem first, ...) so a busy machine does not
    favour one tool; the best (least) time of each is what the table shows.
    """
    answer, _, sequences = epoch_tokens(model)
    times: dict[str, list[float]] = {"lem": [], "mlx_lm": [], "mlx_lm_own": []}
    work = Path(tempfile.mkdtemp(prefix="lem-perf-train-"))
    try:
        for r in range(repeats):
            for tool in ("mlx_lm", "lem") if r % 2 == 0 else ("lem", "mlx_lm"):
                if tool == "lem":
                    times["lem"].append(sum(run_lem(model, iters, per_epoch, work / str(r))))
                    continue
                rates = run_mlx_lm(model, iters, per_epoch, work / str(r))
                # mlx-lm's count is answer + one padding target per sequence
                times["mlx_lm"].append(sum((answer + sequences) / rate for rate in rates))
                times["mlx_lm_own"].append(sum(rates) / len(rates))
    finally:
        shutil.rmtree(work)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="measured epochs after warm-up")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each tool (alternating)")
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
    times = measure(model, iters, per_epoch, args.repeats)

    print(f"model: {model.name}, {params / 1e6:.1f}M parameters (P), float32")
    print(f"data: {sequences} sequences/epoch, {answer} answer tokens, {total} tokens in all")
    print(f"settings: LoRA rank 8 on 16 layers, batch 2, lr 1e-5, {iters} steps, prompt masked")
    print(f"measured: the last {args.epochs} epochs, best of {args.repeats} run(s) per tool")
    print(f"matmul peak (lem.blas.measure_gflops, float32): {peak:.1f} GFLOPS")
    print(f"mlx_lm runs as a subprocess with LD_PRELOAD={blas_path()}: it does not import lem,")
    print("so without it mlx_lm would run on MLX's reference BLAS; lem loads the same library")
    print()
    steps = args.epochs * per_epoch
    print(f"{'tool':<24}{'s/step':>8}{'trained tok/s':>15}{'mlx_lm count':>14}{'MFU':>8}")
    for name, key in (("lem train (in-process)", "lem"), ("python -m mlx_lm lora", "mlx_lm")):
        seconds = min(times[key])
        own = f"{max(times['mlx_lm_own']):.1f}" if key == "mlx_lm" else ""
        mfu = 6 * params * total * args.epochs / seconds / (peak * 1e9)
        trained = answer * args.epochs / seconds
        print(f"{name:<24}{seconds / steps:>8.2f}{trained:>15.1f}{own:>14}{mfu:>8.1%}")
    ratio = min(times["mlx_lm"]) / min(times["lem"])
    print(f"\nlem / mlx_lm throughput: {ratio:.2f}x (above 1: lem is faster)")
    print("trained tok/s counts answer tokens (lem's loss); 'mlx_lm count' is mlx_lm's own")
    print("figure, which adds one padding target per sequence.")
    print("MFU = 6 x P x (input tokens/s) / peak, P = all parameters (trainable + frozen),")
    print("input tokens = prompt + answer of each sequence, no padding. 6P per token is the")
    print("full fine-tune estimate; LoRA on 16 of 30 layers does less work, so it overstates.")


if __name__ == "__main__":
    main()
