"""Nothing lost, nothing doubled: refused runs keep the last good output, output
directories are locked, a full disk is one line, secrets a server echoes are never stored,
and `lem run` accepts the resolved experiment file it writes."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from servers import FakeOpenAI, Received, Reply
from test_bad_input import chat_line, gsm8k_row, one_line_error, seed_line, write

from lem.cli import main
from lem.errors import LemError
from lem.store import LOCK_FILE, JsonlAppender, atomic_write_text, locked, read_jsonl

FIXTURES = Path(__file__).parent / "fixtures"
SRC = Path(__file__).parents[1] / "src"


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def tree_hashes(directory: Path) -> dict[str, str]:
    """Every file under `directory` (hidden ones too) by relative path -> SHA-256 of its bytes."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


# ---------------------------------------------------------------- (a) no data loss

RUN_TOML = """
[experiment]
base = "{base}"
out = "run"
[generate]
teacher = "openai/teacher"
teacher_base_url = "http://127.0.0.1:9/v1"
[train]
iters = {iters}
batch_size = 1
learning_rate = 1e-3
num_layers = {layers}
steps_per_report = 1
steps_per_eval = 1
val_batches = 1
save_every = 1
[bench]
benchmarks = ["gsm8k"]
"""


def test_a_refused_or_failed_run_leaves_the_finished_training_byte_identical(
    tmp_path, tiny_llama_dir
):
    f = tmp_path / "lem.toml"
    run = tmp_path / "run"
    write(run / "training" / "train.jsonl", "".join(map(chat_line, range(3))))
    write(run / "training" / "valid.jsonl", "".join(map(chat_line, range(2))))

    # A finished training: one real step on the tiny llama, fused (the data is made by hand,
    # so only the train stage runs).
    f.write_text(RUN_TOML.format(base=tiny_llama_dir, iters=1, layers=-1))
    first = invoke("run", f, "--only", "train")
    assert first.exit_code == 0, first.output
    assert (run / "train" / "model" / "config.json").is_file()
    before = tree_hashes(run / "train")
    stages = (run / "stages.json").read_bytes()

    # A bad value in any table is refused before anything is touched.
    f.write_text(RUN_TOML.format(base=tiny_llama_dir, iters=-5, layers=-1))
    one_line_error(invoke("run", f), f, "[train]: iters", "-5")
    assert tree_hashes(run / "train") == before
    assert (run / "stages.json").read_bytes() == stages

    # A training that starts and then fails (more layers than the model has) fails in
    # RUN/.train.next: the finished one stays whole.
    f.write_text(RUN_TOML.format(base=tiny_llama_dir, iters=2, layers=9))
    result = invoke("run", f, "--only", "train")
    one_line_error(result, "num_layers 9", after_progress=True)
    assert tree_hashes(run / "train") == before

    # The same change done right replaces it, once complete.
    f.write_text(RUN_TOML.format(base=tiny_llama_dir, iters=2, layers=-1))
    assert invoke("run", f, "--only", "train").exit_code == 0
    after = tree_hashes(run / "train")
    assert after != before and "model/config.json" in after
    assert not (run / ".train.next").exists()


# ---------------------------------------------------------------- (b) two benches, one --out


def bench_process(tiny: Path, items: Path, out: Path) -> subprocess.Popen:
    args = ["bench", "-b", "gsm8k", "-m", f"tiny={tiny}", "--data", items, "--out", out]
    args += ["--max-tokens", "24", "--batch-size", "1"]
    return subprocess.Popen(
        [sys.executable, "-m", "lem", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def ids_once(results: Path, n: int) -> None:
    ids = [r["id"] for r in read_jsonl(results)]
    assert len(ids) == n and len(set(ids)) == n, (len(ids), len(set(ids)))


def test_a_second_bench_into_the_same_out_is_refused_naming_the_holder(tmp_path, tiny_llama_dir):
    items = write(tmp_path / "items.jsonl", "".join(map(gsm8k_row, range(12))))
    out = tmp_path / "out"
    first = bench_process(tiny_llama_dir, items, out)
    try:
        lock = out / LOCK_FILE
        wait_for(lambda: lock.is_file() and lock.read_text().strip() == str(first.pid))
        os.kill(first.pid, signal.SIGSTOP)  # hold it mid-run, whatever the machine's speed
        second = bench_process(tiny_llama_dir, items, out)
        _, err = second.communicate(timeout=300)
        os.kill(first.pid, signal.SIGCONT)
        assert second.returncode == 2, err
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and "Traceback" not in err, err
        assert str(out) in lines[0] and f"pid {first.pid}" in lines[0], lines[0]
        _, err = first.communicate(timeout=300)
        assert first.returncode == 0, err
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGCONT)
            first.kill()
    ids_once(out / "gsm8k_tiny.jsonl", 12)
    verified = invoke("verify", out)
    assert verified.exit_code == 0 and "1 of 1 manifests OK" in verified.output


def test_two_benches_started_together_write_every_id_once(tmp_path, tiny_llama_dir):
    items = write(tmp_path / "items.jsonl", "".join(map(gsm8k_row, range(8))))
    out = tmp_path / "out"
    runs = [bench_process(tiny_llama_dir, items, out) for _ in range(2)]
    done = [(p.returncode, err) for p in runs for _, err in [p.communicate(timeout=300)]]
    assert 0 in [code for code, _ in done], done
    for code, err in done:
        assert code in (0, 2) and "Traceback" not in err, err
        if code == 2:  # refused while the other held the directory
            assert "in use by another lem process" in err and str(out) in err
    ids_once(out / "gsm8k_tiny.jsonl", 8)


# ---------------------------------------------------------------- (c) a stale lock

HOLDER = """
import sys, time
sys.path.insert(0, {src!r})
from lem.store import locked
with locked({directory!r}):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_lock_held_by_a_killed_process_is_taken_over(tmp_path, tiny_llama_dir):
    directory = tmp_path / "out"
    code = HOLDER.format(src=str(SRC), directory=str(directory))
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LemError, match=f"pid {holder.pid}") as refused:
            with locked(directory):
                pass
        assert str(directory) in str(refused.value)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (directory / LOCK_FILE).read_text().strip() == str(holder.pid)  # left behind
    with locked(directory):
        assert (directory / LOCK_FILE).read_text().strip() == str(os.getpid())
    # A command into that directory runs as if the lock were not there.
    items = FIXTURES / "bench" / "gsm8k.jsonl"
    args = ["bench", "-b", "gsm8k", "-m", f"tiny={tiny_llama_dir}", "--data", items]
    result = invoke(*args, "--out", directory, "--max-tokens", "4")
    assert result.exit_code == 0, result.output
    ids_once(directory / "gsm8k_tiny.jsonl", 3)


def test_a_lock_file_nobody_holds_is_taken(tmp_path):
    directory = tmp_path / "out"
    write(directory / LOCK_FILE, "999999999")  # no such process, and no flock on it
    with locked(directory):
        assert (directory / LOCK_FILE).read_text() == str(os.getpid())


# ---------------------------------------------------------------- (d) a full disk


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_is_one_line_and_leaves_no_temp_file(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "fsync", disk_full)
    line = one_line_error(invoke("init", tmp_path), tmp_path / "lem.toml", "free some space")
    assert "No space left on device" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_full_disk_while_appending_results_is_one_line(tmp_path, tiny_llama_dir, monkeypatch):
    import lem.store

    monkeypatch.setattr(lem.store.os, "fsync", disk_full)
    items = FIXTURES / "bench" / "gsm8k.jsonl"
    args = ["bench", "-b", "gsm8k", "-m", f"tiny={tiny_llama_dir}", "--data", items]
    result = invoke(*args, "--out", tmp_path / "out", "--max-tokens", "4")
    one_line_error(result, tmp_path / "out" / "gsm8k_tiny.jsonl", "No space left")


def test_a_full_disk_deep_in_a_library_is_one_line(tmp_path, monkeypatch):
    """A write lem does not make itself (matplotlib's savefig) still ends in one line."""
    from matplotlib.figure import Figure

    def savefig(self, fname, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(fname))

    monkeypatch.setattr(Figure, "savefig", savefig)
    scores = FIXTURES / "score" / "scores"
    result = invoke("report", scores, "--plot", tmp_path / "plot.png")
    one_line_error(result, tmp_path / "plot.png", "No space left")


def test_a_temp_file_left_by_a_killed_writer_is_cleared_by_the_next_write(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stale = write(tmp_path / f".manifest.json.tmp{dead.stdout.strip()}", '{"half": ')
    atomic_write_text(tmp_path / "manifest.json", "{}\n")
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


def test_an_appender_that_cannot_open_its_file_is_one_line(tmp_path):
    (tmp_path / "results.jsonl").mkdir()
    with pytest.raises(LemError, match="results.jsonl: cannot write"):
        JsonlAppender(tmp_path / "results.jsonl")


# ---------------------------------------------------------------- (e) echoed secrets

SECRET = "sk-LEMECHO-0123456789abcdef"


def echo_key(received: Received) -> Reply:
    """A server that repeats the Authorization header back inside its answer."""
    key = received.headers.get("authorization", "")
    return Reply(
        text=f"Thanks for asking. For the record, you sent {key} and {key.split()[-1]}. "
        "Here is what I would weigh, the options you have, and the one I would pick."
    )


def no_secret_in(*roots: Path) -> int:
    files = [p for root in roots for p in root.rglob("*") if p.is_file()]
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path
    return len(files)


def test_a_key_echoed_by_a_teacher_is_stored_nowhere(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("LEM_HOME", str(tmp_path / "home"))
    seeds = write(tmp_path / "seeds.jsonl", "".join(seed_line(i) for i in range(3)))
    with FakeOpenAI(echo_key, api_key=SECRET) as teacher:
        # And one error whose message carries the key, as some servers' 401s do.
        teacher.enqueue(Reply(status=400, message=f"bad request for key {SECRET}"))
        args = ["generate", "--teacher", "openai/t", "--teacher-base-url", teacher.base_url]
        args += ["--seeds", seeds, "--out", tmp_path / "out", "--valid-fraction", "0"]
        result = invoke(*args, "--max-retries", "0", "--concurrency", "1")
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    train = (tmp_path / "out" / "train.jsonl").read_text()
    assert "[redacted]" in train  # the echo reached lem, and was scrubbed before storing
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert "[redacted]" in manifest["failures"][0]["error"]
    assert no_secret_in(tmp_path) >= 4


def test_a_key_echoed_by_a_judge_is_stored_nowhere(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("LEM_HOME", str(tmp_path / "home"))
    results = FIXTURES / "score" / "results" / "truthfulqa_base.jsonl"
    items = FIXTURES / "score" / "items" / "truthfulqa.jsonl"
    with FakeOpenAI(echo_key, api_key=SECRET) as judge:
        args = ["score", results, "--data", f"truthfulqa={items}", "--out", tmp_path / "scores"]
        args += ["--judge", "openai/j", "--judge-base-url", judge.base_url, "--reasks", "0"]
        result = invoke(*args, "--cache", tmp_path / "verdicts.sqlite")
    assert result.exit_code == 0, result.output
    lines = read_jsonl(tmp_path / "scores" / "truthfulqa_base.jsonl")
    assert lines and all("[redacted]" in (r.get("raw") or "") for r in lines)
    assert no_secret_in(tmp_path) >= 3


# ---------------------------------------------------------------- (f) lem.resolved.toml


def test_lem_run_accepts_its_own_resolved_file(tmp_path, tiny_llama_dir, monkeypatch):
    from lem.config import to_dict
    from lem.experiment import STAGES, load_plan, stage_settings

    monkeypatch.chdir(tmp_path)
    project = tmp_path / "project"
    write(project / "seeds.jsonl", seed_line(1) + seed_line(2))
    write(project / "items.jsonl", "".join(map(gsm8k_row, range(3))))
    f = write(
        project / "lem.toml",
        textwrap.dedent(
            f"""
            [experiment]
            base = "{tiny_llama_dir}"
            out = "run"
            [models]
            instruct = "base"
            [generate]
            teacher = "openai/t"
            teacher_base_url = "http://127.0.0.1:9/v1"
            seeds = "seeds.jsonl"
            kernel = "brief"
            [train]
            num_layers = -1
            [bench]
            benchmarks = ["gsm8k"]
            data = {{ gsm8k = "items.jsonl" }}
            [score]
            cache = "verdicts.sqlite"
            [report]
            baseline = "instruct"
            """
        ),
    )
    # Only the report stage, which finds no scores yet: lem.resolved.toml is written first.
    result = invoke("run", f, "--only", "report")
    one_line_error(result, "scores", after_progress=True)
    resolved = project / "run" / "lem.resolved.toml"
    assert resolved.is_file()
    for stage in STAGES:
        ours = to_dict(stage_settings(load_plan(f), stage))
        again = to_dict(stage_settings(load_plan(resolved), stage))
        assert again == ours, stage
    # Run from the resolved file, the stage has the fingerprint it had (so every stage
    # upstream does too): it resumes, and stops where the first run stopped.
    rerun = invoke("run", resolved, "--only", "report")
    assert "[report] resuming" in rerun.stderr
    assert rerun.exit_code == 2 and rerun.stderr.splitlines()[-1] == result.stderr.splitlines()[-1]


# ---------------------------------------------------------------- the judge's bill


def test_the_judge_summary_counts_every_call_the_server_received(tmp_path, monkeypatch):
    from test_score import schema_judge

    monkeypatch.setenv("LEM_HOME", str(tmp_path / "home"))
    results = FIXTURES / "score" / "results" / "truthfulqa_base.jsonl"
    items = FIXTURES / "score" / "items" / "truthfulqa.jsonl"
    with FakeOpenAI(schema_judge) as judge:
        busy = Reply(status=503, headers={"Retry-After": "0"}, message="busy")
        judge.enqueue(busy, busy, busy, busy)  # four retried calls before the verdicts
        args = ["score", results, "--data", f"truthfulqa={items}", "--out", tmp_path / "scores"]
        args += ["--judge", "openai/j", "--judge-base-url", judge.base_url, "--no-cache"]
        result = invoke(*args, "--concurrency", "1")
        received = len(judge.requests)
    assert result.exit_code == 0, result.output
    assert received == 3 + 4
    assert f"{received} calls" in result.stdout, result.stdout
