"""The bench runner on the tiny random llama: results layout, resume, config changes, kill -9."""

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from lem.bench import get_benchmark
from lem.bench.runner import BenchSettings, _response, parse_model, run_bench
from lem.cli import main
from lem.errors import LemError
from lem.store import verify_manifest

FIXTURES = Path(__file__).parent / "fixtures" / "bench"
FIELDS = {
    "id",
    "benchmark",
    "model",
    "prompt",
    "response",
    "finish_reason",
    "tokens",
    "prompt_tokens",
    "seconds",
    "gen_config",
}


def gsm8k_file(path, n):
    rows = [
        {
            "question": f"Tom has {i} marbles and finds {i + 1} more. How many now?",
            "answer": f"#### {2 * i + 1}",
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def settings(tiny, out, **kw):
    base = dict(
        benchmarks=["gsm8k"],
        models={"tiny": str(tiny)},
        data={"gsm8k": str(FIXTURES / "gsm8k.jsonl")},
        out=out,
        max_tokens=6,
    )
    return BenchSettings(**(base | kw))


def lines(path):
    text = path.read_text()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def no_loading(*args, **kwargs):
    raise AssertionError("a model was loaded although nothing was left to do")


def test_results_layout_manifest_and_progress(tiny_llama_dir, tmp_path):
    out = tmp_path / "out"
    stream = io.StringIO()
    s = settings(
        tiny_llama_dir,
        out,
        benchmarks=["gsm8k", "ethics"],
        data={"gsm8k": str(FIXTURES / "gsm8k.jsonl"), "ethics": str(FIXTURES / "ethics.jsonl")},
    )
    reports = run_bench(s, stream=stream)
    assert [(r.benchmark, r.model, r.items, r.generated) for r in reports] == [
        ("gsm8k", "tiny", 3, 3),
        ("ethics", "tiny", 3, 3),
    ]
    rows = lines(out / "gsm8k_tiny.jsonl")
    gsm8k = get_benchmark("gsm8k")
    items = {i["id"]: i for i in gsm8k.load(FIXTURES / "gsm8k.jsonl")}
    assert {r["id"] for r in rows} == set(items)
    for r in rows:
        assert set(r) == FIELDS
        assert r["benchmark"] == "gsm8k" and r["model"] == "tiny"
        assert r["finish_reason"] in ("stop", "length") and 0 < r["tokens"] <= 6
        assert r["prompt"] == gsm8k.prompt(items[r["id"]])
    assert reports[0].hit_cap == sum(r["finish_reason"] == "length" for r in rows)
    eth = lines(out / "ethics_tiny.jsonl")
    assert {r["id"] for r in eth} == {"fix-e1", "fix-e2", "fix-e3"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "bench" and verify_manifest(out / "manifest.json") == []
    run = manifest["runs"]["gsm8k_tiny"]
    assert sorted(run["ids"]) == sorted(items)
    assert run["gen_config"] == rows[0]["gen_config"]
    config = run["config"]
    assert config["max_tokens"] == 6 and config["temperature"] == 0.0 and config["seed"] is None
    assert config["prompt_format"]["kind"] == "chat" and len(config["model_sha256"]) == 64
    assert manifest["runs"]["ethics_tiny"]["config"]["benchmark"] == "ethics"
    progress = stream.getvalue()
    assert "tiny gsm8k: 3/3" in progress and "tok/s" in progress


def test_rerun_skips_finished_ids_and_loads_nothing(tiny_llama_dir, tmp_path):
    out = tmp_path / "out"
    run_bench(settings(tiny_llama_dir, out), stream=io.StringIO())
    before = (out / "gsm8k_tiny.jsonl").read_text()
    reports = run_bench(settings(tiny_llama_dir, out), loader=no_loading, stream=io.StringIO())
    assert reports[0].generated == 0 and reports[0].items == 3
    assert (out / "gsm8k_tiny.jsonl").read_text() == before


def test_a_larger_subset_adds_only_the_new_ids(tiny_llama_dir, tmp_path):
    data = gsm8k_file(tmp_path / "g.jsonl", 12)
    out = tmp_path / "out"
    first = run_bench(
        settings(tiny_llama_dir, out, data={"gsm8k": str(data)}, limit=4), stream=io.StringIO()
    )
    second = run_bench(
        settings(tiny_llama_dir, out, data={"gsm8k": str(data)}, limit=8), stream=io.StringIO()
    )
    assert first[0].generated == 4 and second[0].generated == 4
    ids = [r["id"] for r in lines(out / "gsm8k_tiny.jsonl")]
    assert len(ids) == len(set(ids)) == 8
    # Another seed with greedy decoding is the same generation config: no refusal.
    third = run_bench(
        settings(tiny_llama_dir, out, data={"gsm8k": str(data)}, limit=8, seed=5),
        stream=io.StringIO(),
    )
    assert third[0].items == 8
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["runs"]["gsm8k_tiny"]["seed"] == 5


def test_changed_generation_config_is_refused_then_overwritten(tiny_llama_dir, tmp_path):
    out = tmp_path / "out"
    run_bench(settings(tiny_llama_dir, out), stream=io.StringIO())
    before = (out / "gsm8k_tiny.jsonl").read_text()
    with pytest.raises(LemError) as e:
        run_bench(settings(tiny_llama_dir, out, max_tokens=7), loader=no_loading)
    message = str(e.value)
    assert "gsm8k_tiny.jsonl: holds answers made with a different generation config" in message
    assert "max_tokens 6 -> 7" in message and "--overwrite" in message and "\n" not in message
    assert (out / "gsm8k_tiny.jsonl").read_text() == before
    with pytest.raises(LemError, match="temperature 0.0 -> 0.7, seed None -> 0"):
        run_bench(settings(tiny_llama_dir, out, temperature=0.7), loader=no_loading)
    # --overwrite deletes nothing while another pair can still fail.
    broken = {"tiny": str(tiny_llama_dir), "lek": f"{tiny_llama_dir}:adapter={tmp_path}"}
    with pytest.raises(LemError, match="not an adapter directory"):
        run_bench(settings(tiny_llama_dir, out, max_tokens=7, overwrite=True, models=broken))
    assert (out / "gsm8k_tiny.jsonl").read_text() == before
    reports = run_bench(
        settings(tiny_llama_dir, out, max_tokens=7, overwrite=True), stream=io.StringIO()
    )
    assert reports[0].generated == 3
    rows = lines(out / "gsm8k_tiny.jsonl")
    assert len(rows) == 3 and len({r["gen_config"] for r in rows}) == 1
    assert (
        json.loads((out / "manifest.json").read_text())["runs"]["gsm8k_tiny"]["config"][
            "max_tokens"
        ]
        == 7
    )


def test_results_from_elsewhere_are_not_mixed_in(tiny_llama_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    # A LEM reference results line has no gen_config: it is not ours to extend.
    (out / "gsm8k_tiny.jsonl").write_text(
        json.dumps(
            {"id": "x", "benchmark": "gsm8k", "model": "tiny", "prompt": "p", "response": "r"}
        )
        + "\n"
    )
    with pytest.raises(LemError, match="its config is not in OUT/manifest.json"):
        run_bench(settings(tiny_llama_dir, out), loader=no_loading)


def test_two_models_each_loaded_once_in_turn(tiny_llama_dir, tmp_path):
    from lem.models import load_model

    other = tmp_path / "other"
    shutil.copytree(tiny_llama_dir, other)
    calls = []

    def loader(spec, adapter=None):
        calls.append(spec)
        return load_model(spec, adapter=adapter)

    s = settings(
        tiny_llama_dir, tmp_path / "out", models={"a": str(tiny_llama_dir), "b": str(other)}
    )
    reports = run_bench(s, loader=loader, stream=io.StringIO())
    assert calls == [str(tiny_llama_dir), str(other)]
    assert [(r.model, r.generated) for r in reports] == [("a", 3), ("b", 3)]
    a, b = (lines(tmp_path / "out" / f"gsm8k_{m}.jsonl") for m in "ab")
    # Same weights, greedy: the same answers; the model name is in the config, not the hash.
    assert sorted(r["response"] for r in a) == sorted(r["response"] for r in b)


def test_model_without_chat_template_gets_a_completion_prompt(tiny_llama_dir, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(tiny_llama_dir, base)
    config = json.loads((base / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (base / "tokenizer_config.json").write_text(json.dumps(config))
    for f in base.glob("chat_template.*"):
        f.unlink()
    out = tmp_path / "out"
    run_bench(settings(base, out), stream=io.StringIO())
    manifest = json.loads((out / "manifest.json").read_text())
    fmt = manifest["runs"]["gsm8k_tiny"]["config"]["prompt_format"]
    assert fmt == {
        "kind": "completion",
        "template": "Question: {prompt}\nAnswer:",
        "stop": "\nQuestion:",
    }


def test_completion_answers_end_at_the_next_question():
    fmt = {"kind": "completion", "stop": "\nQuestion:"}
    assert _response(fmt, " 42.\nQuestion: and then?", "length") == ("42.", "stop")
    assert _response(fmt, " 42 and on", "length") == ("42 and on", "length")
    chat = {"kind": "chat"}
    assert _response(chat, "A\nQuestion: B", "stop") == ("A\nQuestion: B", "stop")


def test_model_specs():
    spec = parse_model("lek", "org/model:adapter=adapters/lek")
    assert (spec.name, spec.model.name, spec.adapter) == ("lek", "org/model", "adapters/lek")
    assert parse_model("base", "mlx/org/model").adapter is None
    with pytest.raises(LemError, match="a model name is letters"):
        parse_model("my model", "x")
    with pytest.raises(LemError, match="expected NAME=MODEL or NAME=MODEL:adapter=DIR"):
        parse_model("a", "x:adapter=")
    with pytest.raises(LemError, match="lem bench runs local MLX models"):
        parse_model("g", "gemini/gemini-2.5-flash")


def test_missing_adapter_is_refused_before_loading(tiny_llama_dir, tmp_path):
    s = settings(
        tiny_llama_dir,
        tmp_path / "out",
        models={"lek": f"{tiny_llama_dir}:adapter={tmp_path / 'none'}"},
    )
    with pytest.raises(LemError, match="not an adapter directory"):
        run_bench(s, loader=no_loading)


def test_cli_options_and_errors(tiny_llama_dir, tmp_path):
    runner = CliRunner()
    out = tmp_path / "out"
    ok = runner.invoke(
        main,
        [
            "bench",
            "-b",
            "gsm8k",
            "--data",
            str(FIXTURES / "gsm8k.jsonl"),
            "-m",
            f"tiny={tiny_llama_dir}",
            "--max-tokens",
            "4",
            "--limit",
            "2",
            "--out",
            str(out),
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "gsm8k" in ok.stdout and str(out / "gsm8k_tiny.jsonl") in ok.stdout
    assert len(lines(out / "gsm8k_tiny.jsonl")) == 2
    cases = [
        (
            ["-b", "gsm8k", "-b", "ethics", "--data", "x.jsonl", "-m", "t=x"],
            "--data x.jsonl: with several benchmarks, write --data NAME=FILE",
        ),
        (
            ["-b", "gsm8k", "--data", "ethics=x.jsonl", "-m", f"t={tiny_llama_dir}"],
            "--data names ethics, not among the --benchmark(s)",
        ),
        (["-b", "gsm8k", "-m", "t"], "--model t: expected NAME=MODEL"),
        (["-b", "nope", "-m", "t=x"], "unknown benchmark 'nope'"),
        (["-m", "t=x"], "give at least one --benchmark"),
        (["-b", "gsm8k", "-m", "t=x", "--max-tokens", "0"], "--max-tokens must be at least 1"),
        (["-b", "gsm8k", "--data", str(tmp_path / "no.jsonl"), "-m", "t=x"], "no.jsonl: data file"),
    ]
    for args, message in cases:
        bad = runner.invoke(main, ["bench", *args, "--out", str(tmp_path / "o2")])
        assert bad.exit_code == 2, (args, bad.output)
        assert message in bad.output, (args, bad.output)


def test_out_holding_another_stage_is_refused(tiny_llama_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"stage": "score"}))
    message = "holds a 'score' stage's output, not 'bench'; use another output directory"
    with pytest.raises(LemError, match=message):
        run_bench(settings(tiny_llama_dir, out), loader=no_loading)


def test_kill_9_mid_run_then_resume(tiny_llama_dir, tmp_path):
    """A SIGKILLed `lem bench` re-run ends with every id exactly once and no torn line."""
    data = gsm8k_file(tmp_path / "many.jsonl", 160)
    out = tmp_path / "out"
    results = out / "gsm8k_tiny.jsonl"
    args = [
        sys.executable,
        "-m",
        "lem",
        "bench",
        "-b",
        "gsm8k",
        "--data",
        str(data),
        "-m",
        f"tiny={tiny_llama_dir}",
        "--max-tokens",
        "24",
        "--batch-size",
        "4",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if results.exists() and results.read_text().count("\n") >= 12:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"finished before it could be killed: {proc.stderr.read()}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    killed_at = results.read_text().count("\n")
    assert 12 <= killed_at < 160
    # A kill in the middle of a write leaves a torn last line: add one to be sure.
    with open(results, "a") as f:
        f.write('{"id": "gsm8k-torn", "response": "half')
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = lines(results)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == 160
    assert "gsm8k-torn" not in ids
    assert len({r["gen_config"] for r in rows}) == 1
    assert "160/160" in done.stderr


def test_settings_from_an_experiment_file(tiny_llama_dir, tmp_path):
    toml = tmp_path / "lem.toml"
    toml.write_text(
        "[bench]\n"
        'benchmarks = ["gsm8k"]\n'
        f'models = {{ tiny = "{tiny_llama_dir}" }}\n'
        f'data = {{ gsm8k = "{FIXTURES / "gsm8k.jsonl"}" }}\n'
        "limit = 1\nmax_tokens = 4\n"
    )
    out = tmp_path / "out"
    runner = CliRunner()
    ok = runner.invoke(main, ["bench", "--config", str(toml), "--out", str(out), "--limit", "2"])
    assert ok.exit_code == 0, ok.output
    assert len(lines(out / "gsm8k_tiny.jsonl")) == 2  # the flag beat the file
    assert (
        json.loads((out / "manifest.json").read_text())["runs"]["gsm8k_tiny"]["config"][
            "max_tokens"
        ]
        == 4
    )
    toml.write_text(toml.read_text() + "maxtokens = 5\n")
    bad = runner.invoke(main, ["bench", "--config", str(toml)])
    assert bad.exit_code == 2 and "[bench]: unknown setting 'maxtokens'" in bad.output
