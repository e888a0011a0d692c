"""lem train and lem bench over several processes (MLX ring group on this machine).

The slow tests start real groups of 2 local processes: with `mlx.launch --backend ring`
(what a user types) and with `lem ... -n 2` (lem's own local launcher). Process start-up
(about 5 s each on 2 cores) is most of their time.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_bench_runner import gsm8k_file
from test_train import FIXTURES as CHAT_FIXTURES
from test_train import adapter_weights, read_metrics, write_data

from lem.bench import get_benchmark
from lem.bench.data import load_items
from lem.bench.runner import BenchSettings, in_item_order, plan_pair
from lem.bench.shards import shard_items
from lem.distributed import agree, barrier, broadcast_json, gather_json, group
from lem.errors import LemError
from lem.store import verify_manifest
from lem.train import TrainSettings, train

# 1 vs 2 processes: the same global batch, so the same loss up to float summation order
# (each rank sums its share, then the ranks' sums are added; under `-n 2` each rank also
# runs OpenBLAS on 1 thread instead of 2). Measured here: at most 6.9e-7 relative on the
# tiny llama over 12 steps, 1.2e-6 on SmolLM2 over 3 steps, 7.8e-7 over 8 (perf). The
# bound leaves room for drift over longer runs and stays far below what a training bug
# changes: the loss moves by 2-20% from one step to the next in these runs.
LOSS_RTOL = 1e-4
TIMING = ("seconds",)  # the only fields a second run may change


def lem(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    run = subprocess.run(
        [sys.executable, "-m", "lem", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=None if env is None else os.environ | env,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def ring_port(n: int = 2) -> int:
    """A port P with P .. P+n-1 free on 127.0.0.1 (mlx.launch's ring uses consecutive ones)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            for k in range(1, n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port + k))
            return port
        except OSError:
            continue
    raise RuntimeError("no free ports")


def mlx_launch() -> list[str]:
    """The command prefix a user types for 2 local ranks (ports chosen free)."""
    launcher = str(Path(sys.executable).with_name("mlx.launch"))  # installed beside python
    return [launcher, "--backend", "ring", "-n", "2", "--starting-port", str(ring_port())]


def without_timing(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


# ---- fast: helpers, shares, item order, doctor, the local launcher -----------------------


def test_helpers_in_a_group_of_one():
    g = group()
    assert g.size() == 1 and g.rank() == 0
    assert broadcast_json(g, {"a": [1, "é"]}) == {"a": [1, "é"]}
    assert gather_json(g, [1, 2]) == [[1, 2]]
    barrier(g)
    assert agree(g, lambda: 7) == 7
    with pytest.raises(LemError, match="bad"):
        agree(g, lambda: (_ for _ in ()).throw(LemError("bad")))


def test_shards_split_the_missing_items_and_keep_loglik_packs_whole(tiny_llama_dir, tmp_path):
    from lem.bench.runner import gen_config, model_identity, parse_model
    from lem.loglik import Request, encode_request, plan_packs
    from lem.models import load_model

    loaded = load_model(tiny_llama_dir)
    settings = BenchSettings(benchmarks=["xstest", "truthfulqa_mc"], limit=10, out=tmp_path)
    spec = parse_model("tiny", str(tiny_llama_dir))
    for name in settings.benchmarks:
        bench = get_benchmark(name)
        config = gen_config(bench, model_identity(spec), settings)
        pair = plan_pair(bench, spec, load_items(bench, None, 10, 0), config, settings)
        shares = [shard_items(pair, loaded.tokenizer, 4, r, 3) for r in range(3)]
        ids = [[item["id"] for item in share] for share in shares]
        assert sorted(sum(ids, [])) == sorted(item["id"] for item in pair.todo)
        if bench.answer == "generate":
            assert ids[1] == [item["id"] for item in pair.todo[1::3]]
            continue
        choices = [bench.choices(item) for item in pair.todo]
        encoded = [
            encode_request(loaded.tokenizer, Request(c.context, c.continuations)) for c in choices
        ]
        for pack in plan_packs(encoded, 4):  # every pack is on one rank, whole
            owners = {r for r, share in enumerate(ids) for i in pack if pair.todo[i]["id"] in share}
            assert len(owners) == 1


def test_loglik_of_a_share_is_the_number_of_the_whole(tiny_llama_dir):
    from lem.loglik import Request, continuation_logprobs
    from lem.models import load_model

    loaded = load_model(tiny_llama_dir)
    bench = get_benchmark("truthfulqa_mc")
    items = load_items(bench, None, 8, 0).items
    requests = [Request(c.context, c.continuations) for c in map(bench.choices, items)]
    whole = continuation_logprobs(loaded, requests, 6)
    seen = {}
    continuation_logprobs(loaded, requests, 6, lambda i, lp: seen.setdefault(i, lp), only=[1, 5])
    assert set(seen) == {1, 5}
    assert seen[1] == whole[1] and seen[5] == whole[5]  # exactly: the same packs


def test_results_file_is_rewritten_in_item_order(tmp_path):
    path = tmp_path / "r.jsonl"
    rows = [{"id": i, "x": n} for n, i in enumerate(["c", "zz", "a", "b"])]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    in_item_order(path, ["a", "b", "c"])
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == [
        "a",
        "b",
        "c",
        "zz",  # not among the items: kept, after them
    ]
    before = path.stat().st_mtime_ns
    in_item_order(path, ["a", "b", "c"])
    assert path.stat().st_mtime_ns == before  # already in order: not rewritten


def test_doctor_says_whether_a_group_is_available():
    from click.testing import CliRunner

    from lem.cli import main

    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 0
    line = next(x for x in result.output.splitlines() if x.startswith("distributed"))
    assert "ring available" in line and "runs alone" in line


def test_processes_must_be_positive(tiny_llama_dir, tmp_path):
    from click.testing import CliRunner

    from lem.cli import main

    result = CliRunner().invoke(main, ["train", "-n", "0", "--model", str(tiny_llama_dir)])
    assert result.exit_code == 2 and "-n" in result.output


def test_local_launcher_exits_with_the_ranks_error(tmp_path, capfd):
    from lem.distributed import launch_local

    args = ["train", "--model", "m", "--data", str(tmp_path), "--out", str(tmp_path / "out")]
    assert launch_local(2, args) == 2  # the ranks met in a ring, then refused the input
    err = capfd.readouterr().err.splitlines()
    assert sum("model 'm': no such directory" in line for line in err) == 1  # rank 0's
    assert "Error: stopped: rank 0 failed (see its message)" in err  # rank 1 stops too
    assert not (tmp_path / "out").exists()


# ---- two processes training and benchmarking (slow) ------------------------------------

KILL_RANK0_AT_5 = """
import os, signal
from pathlib import Path
from lem.train import TrainSettings, train

class Kill:  # called on rank 0 only: it dies, mlx.launch then stops rank 1
    def on_train_loss_report(self, info):
        if info["iteration"] == 5:
            os.kill(os.getpid(), signal.SIGKILL)

    def on_val_loss_report(self, info):
        pass

kw = {kw!r}
train(TrainSettings(**(kw | {{"data": Path(kw["data"]), "out": Path(kw["out"])}})), callback=Kill())
"""


def train_flags(kw: dict) -> list[str]:
    args = []
    for key, value in kw.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else "--no-" + flag[2:])
        else:
            args += [flag, str(value)]
    return args


def assert_same_trajectory(one: Path, two: Path) -> None:
    a, b = read_metrics(one), read_metrics(two)
    assert [r["step"] for r in a] == [r["step"] for r in b]  # no step lost or repeated
    for ra, rb in zip(a, b, strict=True):
        for key in ("train_loss", "val_loss", "trained_tokens"):
            if key in ra:
                assert rb[key] == pytest.approx(ra[key], rel=LOSS_RTOL), (ra["step"], key)


@pytest.mark.slow
def test_train_on_two_processes_matches_one_and_resumes_after_a_kill(tiny_llama_dir, tmp_path):
    data = write_data(tmp_path / "data", n_train=12, n_valid=6)
    kw = dict(model=str(tiny_llama_dir), data=str(data), iters=8, batch_size=4)
    kw |= dict(learning_rate=1e-3, num_layers=-1, steps_per_report=1, steps_per_eval=4)
    kw |= dict(save_every=2, val_batches=-1, fuse=False)
    one = train(TrainSettings(**(kw | {"data": data, "out": tmp_path / "one"})))

    # 2 processes under mlx.launch; rank 0 is SIGKILLed at step 5 (after the step-4 checkpoint)
    cut = tmp_path / "two"
    script = KILL_RANK0_AT_5.format(kw=kw | {"out": str(cut)})
    killed = subprocess.run(
        [*mlx_launch(), sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert "rank 0 exited with code -9" in killed.stderr, killed.stderr[-3000:]  # launch exits 0
    assert not (cut / "manifest.json").exists()
    assert sorted(p.name for p in (cut / "checkpoints").iterdir()) == [
        "step-0000002",
        "step-0000004",
    ]

    # resumed on 2 processes by lem's own launcher
    resumed = lem("train", "-n", "2", "--resume", "--out", str(cut), *train_flags(kw))
    assert "resumed from step 4" in resumed.stdout
    assert resumed.stdout.count("resumed from step") == 1  # rank 0 alone reports
    assert_same_trajectory(tmp_path / "one", cut)
    a, b = adapter_weights(one.adapter), adapter_weights(cut / "adapter")
    for name in a:
        np.testing.assert_allclose(np.array(b[name]), np.array(a[name]), rtol=1e-3, atol=1e-6)
    # one set of outputs, written by rank 0 alone, recording the global batch
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert sorted(p.name for p in cut.iterdir()) == names
    assert sorted(p.name for p in (cut / "checkpoints").iterdir()) == [
        "step-0000006",
        "step-0000008",
    ]
    settings = json.loads((cut / "settings.json").read_text())
    assert settings["batch_size"] == 4 and settings["processes"] == 2
    manifest = json.loads((cut / "manifest.json").read_text())
    assert manifest["report"]["processes"] == 2 and manifest["settings"]["batch_size"] == 4
    assert manifest["report"]["trained_tokens"] == one.trained_tokens
    assert verify_manifest(cut / "manifest.json") == []


@pytest.mark.slow
def test_smollm2_trains_the_same_on_two_processes(smollm2_dir, tmp_path):
    kw = dict(model=str(smollm2_dir), data=str(CHAT_FIXTURES), iters=2, batch_size=2)
    kw |= dict(learning_rate=1e-4, steps_per_report=1, steps_per_eval=2, val_batches=1)
    kw |= dict(save_every=2, fuse=False)
    train(TrainSettings(**(kw | {"data": CHAT_FIXTURES, "out": tmp_path / "one"})))
    lem("train", "-n", "2", "--out", str(tmp_path / "two"), *train_flags(kw))
    assert_same_trajectory(tmp_path / "one", tmp_path / "two")


@pytest.mark.slow
def test_bench_on_two_processes_writes_the_file_one_writes(tiny_llama_dir, tmp_path):
    """Byte for byte but for `seconds`: greedy answers (gsm8k) and log-likelihoods
    (truthfulqa_mc, packed as one process packs them), merged in item order; a killed
    2-process run resumes from each rank's part."""
    data = gsm8k_file(tmp_path / "gsm8k.jsonl", 64)
    args = ["-b", "gsm8k", "-b", "truthfulqa_mc", "--data", f"gsm8k={data}", "--limit", "64"]
    args += ["-m", f"tiny={tiny_llama_dir}", "--max-tokens", "24", "--batch-size", "4"]
    # The ranks of `-n 2` run OpenBLAS on 1 thread each; so does the reference run, as
    # threaded BLAS sums in another order (log-likelihoods move in the 6th decimal).
    lem("bench", *args, "--out", str(tmp_path / "one"), env={"OPENBLAS_NUM_THREADS": "1"})

    two = tmp_path / "two"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lem", "bench", "-n", "2", *args, "--out", str(two)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    part = two / ".parts" / "gsm8k_tiny.rank1.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if part.exists() and part.read_text().count("\n") >= 6:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both ranks
    proc.wait()
    assert not (two / "gsm8k_tiny.jsonl").exists()  # killed before the merge
    kept = (two / ".parts" / "gsm8k_tiny.rank0.jsonl").read_text().count("\n")

    done = lem("bench", "-n", "2", *args, "--out", str(two))
    assert "gsm8k_tiny: 64 to answer over 2 processes; rank 0 answers 32" in done.stderr
    # Rank 0 went on from its part: its first progress line (shown after the first burst
    # of answers) already counts the kept ones.
    first = int(re.search(r"tiny gsm8k: (\d+)/32", done.stderr).group(1))
    assert kept < first <= 32, (kept, done.stderr)
    assert done.stdout.count("gsm8k_tiny.jsonl") == 1  # rank 0 alone reports
    for bench, source in (("gsm8k", data), ("truthfulqa_mc", None)):
        rows = without_timing(two / f"{bench}_tiny.jsonl")
        assert rows == without_timing(tmp_path / "one" / f"{bench}_tiny.jsonl"), bench
        items = load_items(get_benchmark(bench), source, 64, 0).items
        assert [r["id"] for r in rows] == [item["id"] for item in items]  # item order
    assert not (two / ".parts").exists()
    assert verify_manifest(two / "manifest.json") == []
