"""1 process vs 2 (an MLX ring group on this machine) for `lem bench` and `lem train`.

Every run is a fresh `lem` command, so the wall times include start-up and model loading
(each rank loads its own copy). SmolLM2-135M-Instruct (float32) for everything.

- bench: xstest (greedy answers) and truthfulqa_mc (log-likelihoods), N items each. The
  2-process results files are compared with the 1-process ones, `seconds` left out: with
  the same OpenBLAS thread count per process they must be identical; against a default
  1-process run (2 BLAS threads) log-likelihoods may differ in the last printed digit.
- train: the same global batch on 1 and 2 processes (`lem train -n 2`, and the same run
  under `mlx.launch`, whose launcher polls its ranks' pipes in a busy loop); trained
  tokens/s from the manifest and the largest relative loss difference over the run.

On one 2-core machine, 2 processes share the same cores, so this is a correctness check
and a measure of the overhead, not of the speed-up across machines.
Usage: python perf/distributed.py [--n 32] [--steps 8]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "chat"


def run(args: list[str], env: dict | None = None) -> float:
    """Run a command; its wall time (it must succeed)."""
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env=os.environ | (env or {}))
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def lem(*args: str) -> list[str]:
    return [sys.executable, "-m", "lem", *args]


def rows(path: Path) -> list[dict]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in lines]


def bench(model: Path, n: int, work: Path) -> None:
    args = ["bench", "-b", "xstest", "-b", "truthfulqa_mc", "--limit", str(n)]
    args += ["-m", f"smol={model}", "--max-tokens", "48", "--batch-size", "16"]
    runs = {
        "1 process": ([], {}),
        "1 process, 1 BLAS thread": ([], {"OPENBLAS_NUM_THREADS": "1"}),
        "2 processes (-n 2)": (["-n", "2"], {}),
    }
    walls = {}
    for label, (extra, env) in runs.items():
        walls[label] = run(lem(*args, *extra, "--out", str(work / label)), env)
    print(f"bench, {n} xstest answers (48 tokens) + {n} truthfulqa_mc items, wall time:")
    for label, wall in walls.items():
        print(f"  {label:<28} {wall:6.1f} s")
    for name in ("xstest_smol.jsonl", "truthfulqa_mc_smol.jsonl"):
        two = rows(work / "2 processes (-n 2)" / name)
        for label in ("1 process, 1 BLAS thread", "1 process"):
            one = rows(work / label / name)
            same = sum(a == b for a, b in zip(one, two, strict=True))
            print(f"  {name}: 2 processes vs {label}: {same}/{len(one)} lines identical")


def train(model: Path, steps: int, work: Path) -> None:
    flags = ["train", "--model", str(model), "--data", str(DATA), "--iters", str(steps)]
    flags += ["--batch-size", "4", "--learning-rate", "1e-4", "--steps-per-report", "1"]
    flags += ["--steps-per-eval", str(steps), "--save-every", str(steps), "--no-fuse"]
    port = free_port()
    launch = ["mlx.launch", "--backend", "ring", "-n", "2", "--starting-port", str(port)]
    runs = {
        "1 process": lem(*flags, "--out", str(work / "t1")),
        "2 processes (-n 2)": lem(*flags, "-n", "2", "--out", str(work / "t2")),
        "2 processes (mlx.launch)": [*launch, *lem(*flags, "--out", str(work / "t3"))],
    }
    print(f"train, {steps} steps of a global batch of 4 (LoRA, 16 layers):")
    first = None
    for (label, command), out in zip(runs.items(), ("t1", "t2", "t3"), strict=True):
        wall = run(command)
        report = json.loads((work / out / "manifest.json").read_text())["report"]
        losses = metrics(work / out)
        first = first or losses
        worst = max(abs(a - b) / abs(a) for a, b in zip(first, losses, strict=True))
        print(
            f"  {label:<26} wall {wall:6.1f} s  {report['tokens_per_second']:6.1f} trained tok/s"
            f"  loss {report['first_train_loss']:.4f} -> {report['final_train_loss']:.4f}"
            f"  max rel. loss diff vs 1 process {worst:.1e}"
        )


def metrics(out: Path) -> list[float]:
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r[k] for r in lines for k in ("train_loss", "val_loss") if k in r]


def free_port() -> int:
    """A port P with P and P+1 free (mlx.launch's ring takes consecutive ports)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32, help="items per benchmark")
    parser.add_argument("--steps", type=int, default=8, help="training steps")
    args = parser.parse_args()
    from lem.fetch import fetch_model

    model = fetch_model()
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start")
    with tempfile.TemporaryDirectory() as tmp:
        bench(model, args.n, Path(tmp))
        train(model, args.steps, Path(tmp))


if __name__ == "__main__":
    main()
