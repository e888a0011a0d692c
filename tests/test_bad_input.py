"""The bad-input corpus: every command, fed what users actually get wrong.

Each case runs the real CLI and must end with exit code 2, exactly one line on stderr
(`Error: ...`), no traceback, and the file, line or option at fault named in that line.
Most cases fail before a model loads; the few that need one use the tiny random llama.
A handful run `lem` as a subprocess, to prove the same end to end (nothing printed by a
library outside click, no traceback from interpreter shutdown).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from servers import FakeOpenAI, Reply

from lem.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
GSM8K_ITEMS = FIXTURES / "bench" / "gsm8k.jsonl"
SCORE_RESULTS = FIXTURES / "score" / "results" / "gsm8k_base.jsonl"
SCORE_ITEMS = FIXTURES / "score" / "items" / "gsm8k.jsonl"
SCORES = FIXTURES / "score" / "scores" / "gsm8k_base.jsonl"
BAD_BYTE = b"\xe9"  # Latin-1 "e acute": the classic non-UTF-8 byte


def invoke(*args: object, env: dict | None = None) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def one_line_error(result: Result, *named: object, after_progress: bool = False) -> str:
    """Exit 2, one `Error:` line on stderr naming every fragment, and no traceback.

    `after_progress`: the command did work first, so progress lines may precede the error
    (it must still be the only `Error:` line, and the last line).
    """
    trace = "".join(traceback.format_exception(*result.exc_info)) if result.exc_info else ""
    assert result.exit_code == 2, f"exit {result.exit_code}\n{result.output}\n{trace}"
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("Error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    if not after_progress:
        assert len(lines) == 1, result.stderr
    for fragment in named:
        assert str(fragment) in errors[0], (fragment, errors[0])
    return errors[0]


# ---------------------------------------------------------------- file makers


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def seed_line(i: int, prompt: str = "How do I tell a friend a hard truth?") -> str:
    return json.dumps({"id": f"S{i:03d}", "domain": "care", "prompt": prompt}) + "\n"


def chat_line(i: int) -> str:
    messages = [
        {"role": "user", "content": f"What is {i} times 3?"},
        {"role": "assistant", "content": f"It is {3 * i}."},
    ]
    return json.dumps({"id": f"ex-{i}", "messages": messages}) + "\n"


def training_dir(path: Path, train: str | bytes | None = None) -> Path:
    write(path / "train.jsonl", train if train is not None else "".join(map(chat_line, range(4))))
    write(path / "valid.jsonl", "".join(map(chat_line, range(2))))
    return path


def kernel_dir(path: Path, text: str | bytes = "Be kind.\n", axioms: str | None = None) -> Path:
    from lem.kernel import default_kernel_dir

    write(path / "kernel.md", text)
    shipped = (default_kernel_dir() / "axioms.json").read_text()
    write(path / "axioms.json", axioms if axioms is not None else shipped)
    return path


def gsm8k_row(i: int) -> str:
    return json.dumps({"question": f"What is {i} plus {i}?", "answer": f"#### {2 * i}"}) + "\n"


def experiment(
    t: Path,
    tiny: Path,
    extra: str = "",
    generate: str = 'teacher = "reference"',
    bench: str = 'benchmarks = ["gsm8k"]',
) -> Path:
    """A lem.toml for the tiny llama; each argument is the body of its table."""
    text = (
        f'[experiment]\nbase = "{tiny}"\nout = "run"\n[models]\ninstruct = "base"\n'
        f"[generate]\n{generate}\n[bench]\n{bench}\n{extra}"
    )
    return write(t / "lem.toml", text)


# ---------------------------------------------------------------- the corpus

Case = Callable[[Path, Path], tuple[list, list]]  # (tmp dir, tiny llama) -> (args, named)
CASES: dict[str, Case] = {}


def case(name: str) -> Callable[[Case], Case]:
    def register(fn: Case) -> Case:
        assert name not in CASES
        CASES[name] = fn
        return fn

    return register


# --- init


@case("init: DIRECTORY is a regular file")
def _(t, tiny):
    f = write(t / "taken", "x")
    return ["init", f], [f, "is a file"]


@case("init: lem.toml exists")
def _(t, tiny):
    write(t / "lem.toml", "# mine\n")
    return ["init", t], [t / "lem.toml", "--force"]


@case("init --force: lem.toml is a directory")
def _(t, tiny):
    (t / "lem.toml").mkdir()
    return ["init", t, "--force"], [t / "lem.toml"]


# --- run (lem.toml)


@case("run: experiment file missing")
def _(t, tiny):
    return ["run", t / "none.toml"], [t / "none.toml", "not found"]


@case("run: experiment file is a directory")
def _(t, tiny):
    return ["run", t], [t, "directory"]


@case("run: non-UTF-8 lem.toml")
def _(t, tiny):
    f = write(t / "lem.toml", b'[experiment]\nname = "caf' + BAD_BYTE + b'"\n')
    return ["run", f], [f"{f}:2", "UTF-8"]


@case("run: invalid TOML")
def _(t, tiny):
    f = write(t / "lem.toml", "[experiment\n")
    return ["run", f], [f, "invalid TOML"]


@case("run: empty lem.toml")
def _(t, tiny):
    f = write(t / "lem.toml", "")
    return ["run", f], [f, "base"]


@case("run: unknown table")
def _(t, tiny):
    f = experiment(t, tiny, "[trian]\niters = 1\n")
    return ["run", f], [f, "trian"]


@case("run: unknown setting")
def _(t, tiny):
    f = experiment(t, tiny, "[train]\niter = 3\n")
    return ["run", f], [f, "[train]", "'iter'"]


@case("run: iters out of range")
def _(t, tiny):
    f = experiment(t, tiny, "[train]\niters = -5\n")
    return ["run", f], [f, "[train]: iters", "at least 1", "-5"]


@case("run: bench limit out of range")
def _(t, tiny):
    f = experiment(t, tiny, bench="limit = -1")
    return ["run", f], [f, "[bench]: limit"]


@case("run: score concurrency 0")
def _(t, tiny):
    f = experiment(t, tiny, "[score]\nconcurrency = 0\n")
    return ["run", f], [f, "[score]: concurrency"]


@case("run: valid_fraction 1.5")
def _(t, tiny):
    f = experiment(t, tiny, generate='teacher = "reference"\nvalid_fraction = 1.5')
    return ["run", f], [f, "[generate]: valid_fraction"]


@case("run: iters of the wrong type")
def _(t, tiny):
    f = experiment(t, tiny, '[train]\niters = "many"\n')
    return ["run", f], [f, "[train]: iters", "int"]


@case("run: fine_tune_type not a choice")
def _(t, tiny):
    f = experiment(t, tiny, '[train]\nfine_tune_type = "qlora"\n')
    return ["run", f], [f, "fine_tune_type", "lora"]


@case("run: unknown benchmark in [bench]")
def _(t, tiny):
    f = experiment(t, tiny, bench='benchmarks = ["gsm9k"]')
    return ["run", f], [f, "[bench]", "gsm9k"]


@case("run: limits names a benchmark not run")
def _(t, tiny):
    f = experiment(t, tiny, bench='benchmarks = ["gsm8k"]\nlimits = { xstest = 5 }')
    return ["run", f], [f, "[bench]", "xstest"]


@case("run: bench data file missing")
def _(t, tiny):
    f = experiment(t, tiny, bench='benchmarks = ["gsm8k"]\ndata = { gsm8k = "none.jsonl" }')
    return ["run", f], [f, "[bench]", "none.jsonl"]


@case("run: judge spec that names nothing")
def _(t, tiny):
    f = experiment(t, tiny, '[score]\njudge = "not-a-model"\n')
    return ["run", f], [f, "[score]", "not-a-model"]


@case("run: no teacher")
def _(t, tiny):
    f = experiment(t, tiny, generate="seed = 0")
    return ["run", f], [f, "[generate]", "teacher"]


@case("run: kernel directory missing")
def _(t, tiny):
    f = experiment(t, tiny, generate='teacher = "reference"\nkernel = "nokernel"')
    return ["run", f], [f, "[generate]", "nokernel"]


@case("run: --force unknown stage")
def _(t, tiny):
    f = experiment(t, tiny)
    return ["run", f, "--force", "trian"], ["--force trian", "generate"]


@case("run: --only unknown stage")
def _(t, tiny):
    f = experiment(t, tiny)
    return ["run", f, "--only", "scoring"], ["--only scoring"]


@case("run: base model missing")
def _(t, tiny):
    f = experiment(t, t / "no-model")
    return ["run", f], [f, "[experiment] base", "no-model", "lem model fetch"]


@case("run: --out is a regular file")
def _(t, tiny):
    f = experiment(t, tiny)
    taken = write(t / "taken", "x")
    return ["run", f, "--out", taken], [taken, "is a file"]


# --- kernel check


@case("kernel check: directory missing")
def _(t, tiny):
    return ["kernel", "check", t / "nokernel"], [t / "nokernel", "kernel directory"]


@case("kernel check: DIRECTORY is a file")
def _(t, tiny):
    f = write(t / "kernel.md", "Be kind.\n")
    return ["kernel", "check", f], [f, "kernel directory"]


@case("kernel check: non-UTF-8 kernel.md")
def _(t, tiny):
    k = kernel_dir(t / "k", b"Be kind.\nRespect the caf" + BAD_BYTE + b" owner.\n")
    return ["kernel", "check", k], [f"{k / 'kernel.md'}:2", "UTF-8"]


@case("kernel check: empty kernel.md")
def _(t, tiny):
    k = kernel_dir(t / "k", "")
    return ["kernel", "check", k], [k / "kernel.md", "empty"]


@case("kernel check: axioms.json not JSON")
def _(t, tiny):
    k = kernel_dir(t / "k", axioms='{"axioms": [,]}')
    return ["kernel", "check", k], [k / "axioms.json", "not valid JSON"]


@case("kernel check: axioms.json breaks its schema")
def _(t, tiny):
    body = json.loads(kernel_dir(t / "k").joinpath("axioms.json").read_text())
    del body["axioms"][0]["statement"]
    k = kernel_dir(t / "k", axioms=json.dumps(body))
    return ["kernel", "check", k], [k / "axioms.json", "axioms[0]", "statement"]


@case("kernel check: axioms.json missing")
def _(t, tiny):
    k = kernel_dir(t / "k")
    (k / "axioms.json").unlink()
    return ["kernel", "check", k], [k / "axioms.json", "not found"]


@case("kernel check --seeds: non-UTF-8 seeds")
def _(t, tiny):
    bad = b'{"id": "S002", "domain": "care", "prompt": "caf\xe9?"}\n'
    f = write(t / "seeds.jsonl", seed_line(1).encode() + bad)
    return ["kernel", "check", "--seeds", f], [f"{f}:2", "UTF-8"]


@case("kernel check --seeds: missing file")
def _(t, tiny):
    return ["kernel", "check", "--seeds", t / "none.jsonl"], [t / "none.jsonl", "not found"]


@case("kernel check --seeds: a directory")
def _(t, tiny):
    return ["kernel", "check", "--seeds", t], [t, "directory"]


@case("kernel check --seeds: malformed JSON line")
def _(t, tiny):
    f = write(t / "seeds.jsonl", seed_line(1) + '{"id": "S002", "domain": \n')
    return ["kernel", "check", "--seeds", f], [f"{f}:2", "not valid JSON"]


@case("kernel check --seeds: empty file")
def _(t, tiny):
    f = write(t / "seeds.jsonl", "")
    return ["kernel", "check", "--seeds", f], [f, "no seeds"]


@case("kernel check --seeds: missing field")
def _(t, tiny):
    f = write(t / "seeds.jsonl", seed_line(1) + '{"id": "S002", "domain": "care"}\n')
    return ["kernel", "check", "--seeds", f], [f"{f}:2", "prompt"]


@case("kernel check --seeds: a line that is a list")
def _(t, tiny):
    f = write(t / "seeds.jsonl", "[1, 2]\n")
    return ["kernel", "check", "--seeds", f], [f"{f}:1", "object"]


@case("kernel check --seeds: tension names an unknown axiom")
def _(t, tiny):
    row = {"id": "S1", "domain": "care", "prompt": "Hi?", "tension": ["no-such-axiom"]}
    f = write(t / "seeds.jsonl", json.dumps(row) + "\n")
    return ["kernel", "check", "--seeds", f], [f"{f}:1", "no-such-axiom"]


# --- generate


@case("generate: no teacher")
def _(t, tiny):
    return ["generate", "--out", t / "o"], ["--teacher"]


@case("generate: non-UTF-8 seeds")
def _(t, tiny):
    f = write(
        t / "seeds.jsonl", b'{"id": "S1", "domain": "care", "prompt": "caf' + BAD_BYTE + b'?"}\n'
    )
    args = ["generate", "--teacher", "openai/t", "--teacher-base-url", "http://127.0.0.1:9/v1"]
    return [*args, "--seeds", f, "--out", t / "o"], [f"{f}:1", "UTF-8"]


@case("generate: seeds missing")
def _(t, tiny):
    args = ["generate", "--teacher", "reference", "--seeds", t / "none.jsonl"]
    return [*args, "--out", t / "o"], [t / "none.jsonl", "not found"]


@case("generate: --seeds is a directory")
def _(t, tiny):
    args = ["generate", "--teacher", "reference", "--seeds", t, "--out", t / "o"]
    return args, [t, "directory"]


@case("generate: --kernel is a file")
def _(t, tiny):
    f = write(t / "kernel.md", "Be kind.\n")
    args = ["generate", "--teacher", "reference", "--kernel", f, "--out", t / "o"]
    return args, [f, "kernel directory"]


@case("generate: --out is a regular file")
def _(t, tiny):
    f = write(t / "taken", "x")
    return ["generate", "--teacher", "reference", "--out", f], ["--out", f, "is a file"]


@case("generate: --valid-fraction 1.5")
def _(t, tiny):
    return ["generate", "--teacher", "reference", "--valid-fraction", "1.5"], ["--valid-fraction"]


@case("generate: --max-tokens 0")
def _(t, tiny):
    return ["generate", "--teacher", "reference", "--max-tokens", "0"], ["--max-tokens"]


@case("generate: --concurrency 0")
def _(t, tiny):
    return ["generate", "--teacher", "reference", "--concurrency", "0"], ["--concurrency"]


@case("generate: --max-tokens not a number")
def _(t, tiny):
    return ["generate", "--teacher", "reference", "--max-tokens", "lots"], ["--max-tokens"]


@case("generate: unknown teacher spec")
def _(t, tiny):
    return ["generate", "--teacher", "nope", "--out", t / "o"], ["nope"]


@case("generate: kernel directory missing")
def _(t, tiny):
    args = ["generate", "--teacher", "reference", "--kernel", t / "nokernel"]
    return [*args, "--out", t / "o"], [t / "nokernel"]


@case("generate: --config with an unknown setting")
def _(t, tiny):
    f = experiment(t, tiny, generate='teacher = "reference"\ntemprature = 0.5')
    return ["generate", "--config", f], [f, "[generate]", "temprature"]


@case("generate: unknown option")
def _(t, tiny):
    return ["generate", "--teachr", "reference"], ["--teachr"]


# --- train


@case("train: data directory missing")
def _(t, tiny):
    return ["train", "--model", tiny, "--data", t / "nodata", "--out", t / "o"], [t / "nodata"]


@case("train: --data is a file")
def _(t, tiny):
    f = write(t / "train.jsonl", chat_line(1))
    return ["train", "--model", tiny, "--data", f, "--out", t / "o"], [f]


@case("train: non-UTF-8 train.jsonl")
def _(t, tiny):
    bad = chat_line(1).encode() + chat_line(2).replace("times", "tim\u00e9s").encode("latin-1")
    d = training_dir(t / "data", bad)
    return ["train", "--model", tiny, "--data", d, "--out", t / "o"], [
        f"{d / 'train.jsonl'}:2",
        "UTF-8",
    ]


@case("train: malformed JSON line")
def _(t, tiny):
    d = training_dir(t / "data", chat_line(1) + "{not json\n")
    return ["train", "--model", tiny, "--data", d, "--out", t / "o"], [
        f"{d / 'train.jsonl'}:2",
        "JSON",
    ]


@case("train: messages missing")
def _(t, tiny):
    d = training_dir(t / "data", chat_line(1) + '{"id": "x", "text": "hello"}\n')
    return ["train", "--model", tiny, "--data", d, "--out", t / "o"], [
        f"{d / 'train.jsonl'}:2",
        "messages",
    ]


@case("train: empty train.jsonl")
def _(t, tiny):
    d = training_dir(t / "data", "")
    return ["train", "--model", tiny, "--data", d, "--out", t / "o"], [d / "train.jsonl"]


@case("train: valid.jsonl missing")
def _(t, tiny):
    d = training_dir(t / "data")
    (d / "valid.jsonl").unlink()
    return ["train", "--model", tiny, "--data", d, "--out", t / "o"], [d / "valid.jsonl"]


@case("train: --out is a regular file")
def _(t, tiny):
    d, f = training_dir(t / "data"), write(t / "taken", "x")
    return ["train", "--model", tiny, "--data", d, "--out", f], ["--out", f, "is a file"]


@case("train: --iters -5")
def _(t, tiny):
    return ["train", "--model", tiny, "--iters", "-5"], ["--iters", "-5"]


@case("train: --learning-rate 0")
def _(t, tiny):
    return ["train", "--model", tiny, "--learning-rate", "0"], ["--learning-rate"]


@case("train: --lora-dropout 1")
def _(t, tiny):
    return ["train", "--model", tiny, "--lora-dropout", "1"], ["--lora-dropout"]


@case("train: --fine-tune-type not a choice")
def _(t, tiny):
    return ["train", "--model", tiny, "--fine-tune-type", "qlora"], ["--fine-tune-type", "qlora"]


@case("train: --iters not a number")
def _(t, tiny):
    return ["train", "--model", tiny, "--iters", "abc"], ["--iters", "abc"]


@case("train: model path missing")
def _(t, tiny):
    d = training_dir(t / "data")
    args = ["train", "--model", t / "no-model", "--data", d, "--out", t / "o"]
    return args, [t / "no-model", "lem model fetch"]


@case("train: model is a directory without config.json")
def _(t, tiny):
    d = training_dir(t / "data")
    (t / "empty-model").mkdir()
    args = ["train", "--model", t / "empty-model", "--data", d, "--out", t / "o"]
    return args, [t / "empty-model", "config.json"]


@case("train: --num-layers more than the model has")
def _(t, tiny):
    d = training_dir(t / "data")
    args = ["train", "--model", tiny, "--data", d, "--out", t / "o", "--num-layers", "9"]
    return args, ["num_layers 9", "2 layers"]


@case("train: no model")
def _(t, tiny):
    return ["train", "--data", training_dir(t / "data"), "--out", t / "o"], ["--model"]


@case("train: --config with iters = 0")
def _(t, tiny):
    f = experiment(t, tiny, "[train]\niters = 0\n")
    return ["train", "--config", f], [f, "[train]: iters"]


# --- fuse


@case("fuse: --out is a regular file")
def _(t, tiny):
    adapter = write(t / "adapter" / "adapter_config.json", "{}").parent
    f = write(t / "taken", "x")
    return ["fuse", "--model", tiny, "--adapter", adapter, "--out", f], ["--out", f]


@case("fuse: adapter missing")
def _(t, tiny):
    args = ["fuse", "--model", tiny, "--adapter", t / "noadapter", "--out", t / "o"]
    return args, [t / "noadapter", "adapter"]


@case("fuse: adapter is a file")
def _(t, tiny):
    f = write(t / "adapters.safetensors", "x")
    return ["fuse", "--model", tiny, "--adapter", f, "--out", t / "o"], [f, "adapter"]


@case("fuse: base model missing")
def _(t, tiny):
    adapter = write(t / "adapter" / "adapter_config.json", "{}").parent
    args = ["fuse", "--model", t / "no-model", "--adapter", adapter, "--out", t / "o"]
    return args, [t / "no-model"]


@case("fuse: --out holds other files")
def _(t, tiny):
    adapter = write(t / "adapter" / "adapter_config.json", "{}").parent
    write(t / "busy" / "notes.txt", "mine")
    return ["fuse", "--model", tiny, "--adapter", adapter, "--out", t / "busy"], [t / "busy"]


# --- bench


def bench(t: Path, tiny: Path, *extra: object) -> list:
    return ["bench", "-b", "gsm8k", "-m", f"tiny={tiny}", "--out", t / "out", *extra]


@case("bench: unknown benchmark")
def _(t, tiny):
    return ["bench", "-b", "gsm9k", "-m", f"tiny={tiny}"], ["gsm9k", "gsm8k"]


@case("bench: no model")
def _(t, tiny):
    return ["bench", "-b", "gsm8k"], ["--model"]


@case("bench: --model without NAME=")
def _(t, tiny):
    return ["bench", "-b", "gsm8k", "-m", "just-a-name"], ["--model", "just-a-name"]


@case("bench: model path missing")
def _(t, tiny):
    args = ["bench", "-b", "gsm8k", "-m", f"x={t / 'no-model'}", "--data", GSM8K_ITEMS]
    return args, ["--model x", "no-model"]


@case("bench: non-UTF-8 JSONL items")
def _(t, tiny):
    f = write(
        t / "items.jsonl", gsm8k_row(1).encode() + b'{"question": "caf\xe9?", "answer": "1"}\n'
    )
    return bench(t, tiny, "--data", f), [f"{f}:2", "UTF-8"]


@case("bench: non-UTF-8 CSV items")
def _(t, tiny):
    f = write(t / "items.csv", b"question,answer\nWhat is 1+1?,#### 2\ncaf\xe9?,#### 3\n")
    return bench(t, tiny, "--data", f), [f"{f}:3", "UTF-8"]


@case("bench: malformed JSONL line")
def _(t, tiny):
    f = write(t / "items.jsonl", gsm8k_row(1) + '{"question": \n')
    return bench(t, tiny, "--data", f), [f"{f}:2", "JSON"]


@case("bench: CSV with more cells than headers")
def _(t, tiny):
    f = write(t / "items.csv", "question,answer\nWhat is 1+1?,#### 2,extra\n")
    return bench(t, tiny, "--data", f), [f"{f}:2", "cells"]


@case("bench: empty items file")
def _(t, tiny):
    f = write(t / "items.jsonl", "")
    return bench(t, tiny, "--data", f), [f, "no gsm8k items"]


@case("bench: empty CSV")
def _(t, tiny):
    f = write(t / "items.csv", "")
    return bench(t, tiny, "--data", f), [f]


@case("bench: items file missing")
def _(t, tiny):
    return bench(t, tiny, "--data", t / "none.jsonl"), [t / "none.jsonl", "not found"]


@case("bench: items path is a directory")
def _(t, tiny):
    (t / "items").mkdir()
    return bench(t, tiny, "--data", t / "items"), [t / "items", "directory"]


@case("bench: items row missing its field")
def _(t, tiny):
    f = write(t / "items.jsonl", gsm8k_row(1) + '{"answer": "#### 2"}\n')
    return bench(t, tiny, "--data", f), [f"{f}:2", "question"]


@case("bench: items field of the wrong type")
def _(t, tiny):
    f = write(t / "items.jsonl", '{"question": 12, "answer": "#### 2"}\n')
    return bench(t, tiny, "--data", f), [f"{f}:1", "question"]


@case("bench: items file of an unknown type")
def _(t, tiny):
    f = write(t / "items.txt", "What is 1+1?\n")
    return bench(t, tiny, "--data", f), [f, ".txt"]


@case("bench: --data for a benchmark not run")
def _(t, tiny):
    return bench(t, tiny, "--data", f"xstest={GSM8K_ITEMS}"), ["--data", "xstest"]


@case("bench: --data with an unknown benchmark name")
def _(t, tiny):
    return bench(t, tiny, "--data", f"gsm9k={GSM8K_ITEMS}"), ["--data", "gsm9k"]


@case("bench: --out is a regular file")
def _(t, tiny):
    f = write(t / "taken", "x")
    args = ["bench", "-b", "gsm8k", "-m", f"tiny={tiny}", "--data", GSM8K_ITEMS, "--out", f]
    return args, ["--out", f, "is a file"]


@case("bench: --limit 0")
def _(t, tiny):
    return bench(t, tiny, "--data", GSM8K_ITEMS, "--limit", "0"), ["--limit"]


@case("bench: --batch-size 0")
def _(t, tiny):
    return bench(t, tiny, "--data", GSM8K_ITEMS, "--batch-size", "0"), ["--batch-size"]


@case("bench: --temperature -1")
def _(t, tiny):
    return bench(t, tiny, "--data", GSM8K_ITEMS, "--temperature", "-1"), ["--temperature"]


@case("bench: --max-tokens 0")
def _(t, tiny):
    return bench(t, tiny, "--data", GSM8K_ITEMS, "--max-tokens", "0"), ["--max-tokens"]


@case("bench: model directory with a broken config.json")
def _(t, tiny):
    import shutil

    broken = t / "broken-model"
    shutil.copytree(tiny, broken)
    (broken / "config.json").write_text('{"model_type": "llama", ')
    args = ["bench", "-b", "gsm8k", "-m", f"x={broken}", "--data", GSM8K_ITEMS, "--out", t / "o"]
    return args, [broken / "config.json"]


@case("bench: model directory with a non-UTF-8 config.json")
def _(t, tiny):
    import shutil

    broken = t / "broken-model"
    shutil.copytree(tiny, broken)
    (broken / "config.json").write_bytes(b'{"model_type": "llama\xe9"}\n')
    args = ["bench", "-b", "gsm8k", "-m", f"x={broken}", "--data", GSM8K_ITEMS, "--out", t / "o"]
    return args, [f"{broken / 'config.json'}:1", "UTF-8"]


@case("bench: adapter that is no adapter")
def _(t, tiny):
    (t / "noadapter").mkdir()
    args = ["bench", "-b", "gsm8k", "-m", f"x={tiny}:adapter={t / 'noadapter'}"]
    return [*args, "--data", GSM8K_ITEMS, "--out", t / "o"], [t / "noadapter", "adapter"]


@case("bench: --out holds another stage's output")
def _(t, tiny):
    write(t / "o" / "manifest.json", json.dumps({"stage": "train"}))
    args = ["bench", "-b", "gsm8k", "-m", f"tiny={tiny}", "--data", GSM8K_ITEMS]
    return [*args, "--out", t / "o"], [t / "o", "'train'"]


@case("bench: --config with limits for an unknown benchmark")
def _(t, tiny):
    f = experiment(t, tiny, bench='benchmarks = ["gsm8k"]\nlimits = { gsm9k = 3 }')
    return ["bench", "--config", f], [f, "gsm9k"]


# --- score


def score(t: Path, results: Path, *extra: object) -> list:
    return ["score", results, "--data", f"gsm8k={SCORE_ITEMS}", "--out", t / "scores", *extra]


@case("score: --reasks -1")
def _(t, tiny):
    return score(t, SCORE_RESULTS, "--reasks", "-1"), ["--reasks", "-1"]


@case("score: --concurrency 0")
def _(t, tiny):
    return score(t, SCORE_RESULTS, "--concurrency", "0"), ["--concurrency"]


@case("score: --timeout 0")
def _(t, tiny):
    return score(t, SCORE_RESULTS, "--timeout", "0"), ["--timeout"]


@case("score: non-UTF-8 results")
def _(t, tiny):
    raw = SCORE_RESULTS.read_bytes().replace(b"pencils", b"cr\xe9pes", 1)
    f = write(t / "gsm8k_base.jsonl", raw)
    return score(t, f), [f"{f}:1", "UTF-8"]


@case("score: results missing")
def _(t, tiny):
    return score(t, t / "none.jsonl"), [t / "none.jsonl", "not found"]


@case("score: malformed results line")
def _(t, tiny):
    f = write(t / "gsm8k_base.jsonl", SCORE_RESULTS.read_text() + '{"id": "g9", \n')
    n = len(SCORE_RESULTS.read_text().splitlines()) + 1
    return score(t, f), [f"{f}:{n}", "JSON"]


@case("score: empty results file")
def _(t, tiny):
    f = write(t / "gsm8k_base.jsonl", "")
    return score(t, f), [f, "no results"]


@case("score: results line without benchmark")
def _(t, tiny):
    f = write(t / "gsm8k_base.jsonl", '{"id": "g1", "model": "base", "response": "4"}\n')
    return score(t, f), [f"{f}:1", "benchmark"]


@case("score: results of an unknown benchmark")
def _(t, tiny):
    row = {"id": "g1", "benchmark": "gsm9k", "model": "base", "response": "4"}
    f = write(t / "gsm9k_base.jsonl", json.dumps(row) + "\n")
    return ["score", f, "--out", t / "scores"], [f, "gsm9k"]


@case("score: results directory without results")
def _(t, tiny):
    (t / "results").mkdir()
    return ["score", t / "results", "--out", t / "scores"], [t / "results", "*.jsonl"]


@case("score: no results given")
def _(t, tiny):
    return ["score", "--out", t / "scores"], ["RESULTS"]


@case("score: --out is a regular file")
def _(t, tiny):
    f = write(t / "taken", "x")
    return score(t, SCORE_RESULTS)[:-2] + ["--out", f], ["--out", f, "is a file"]


@case("score: --cache is a directory")
def _(t, tiny):
    (t / "cache").mkdir()
    return score(t, SCORE_RESULTS, "--cache", t / "cache"), ["--cache", t / "cache"]


@case("score: --cache is not a verdict cache")
def _(t, tiny):
    f = write(t / "notes.txt", "these are my notes, not a database\n" * 200)
    results = FIXTURES / "score" / "results" / "truthfulqa_base.jsonl"
    items = FIXTURES / "score" / "items" / "truthfulqa.jsonl"
    args = ["score", results, "--data", f"truthfulqa={items}", "--out", t / "scores"]
    judge = ["--judge", "openai/j", "--judge-base-url", "http://127.0.0.1:9/v1"]
    return [*args, *judge, "--cache", f], ["--cache", f]


@case("score: non-UTF-8 items (--data)")
def _(t, tiny):
    f = write(t / "items.jsonl", SCORE_ITEMS.read_bytes().replace(b"pencils", b"cr\xe9pes", 1))
    args = ["score", SCORE_RESULTS, "--data", f"gsm8k={f}", "--out", t / "scores"]
    return args, [f"{f}:1", "UTF-8"]


@case("score: result id not among the items")
def _(t, tiny):
    row = {"id": "zz", "benchmark": "gsm8k", "model": "base", "response": "#### 4"}
    f = write(t / "gsm8k_base.jsonl", json.dumps(row) + "\n")
    return score(t, f), [f, "'zz'", "--data"]


@case("score: unknown judge spec")
def _(t, tiny):
    return score(t, SCORE_RESULTS, "--judge", "not-a-model"), ["not-a-model"]


@case("score: --out is the results directory")
def _(t, tiny):
    f = write(t / "r" / "gsm8k_base.jsonl", SCORE_RESULTS.read_text())
    args = ["score", f, "--data", f"gsm8k={SCORE_ITEMS}", "--out", t / "r"]
    return args, [f, "--out"]


# --- report


@case("report: non-UTF-8 scores")
def _(t, tiny):
    f = write(t / "s.jsonl", SCORES.read_bytes().replace(b'"base"', b'"b\xe9se"', 1))
    return ["report", f], [f"{f}:1", "UTF-8"]


@case("report: empty scores file")
def _(t, tiny):
    f = write(t / "s.jsonl", "")
    return ["report", f], [f, "empty"]


@case("report: scores missing")
def _(t, tiny):
    return ["report", t / "none.jsonl"], [t / "none.jsonl", "not found"]


@case("report: malformed scores line")
def _(t, tiny):
    f = write(t / "s.jsonl", SCORES.read_text() + "{oops\n")
    n = len(SCORES.read_text().splitlines()) + 1
    return ["report", f], [f"{f}:{n}", "JSON"]


@case("report: scores line missing fields")
def _(t, tiny):
    f = write(t / "s.jsonl", '{"id": "g1", "model": "base"}\n')
    return ["report", f], [f"{f}:1", "benchmark"]


@case("report: ok verdict without a number")
def _(t, tiny):
    row = {"id": "g1", "benchmark": "gsm8k", "model": "b", "metric": "accuracy"}
    f = write(t / "s.jsonl", json.dumps(row | {"value": "yes", "status": "ok"}) + "\n")
    return ["report", f], [f"{f}:1", "number"]


@case("report: a results file given as scores")
def _(t, tiny):
    return ["report", SCORE_RESULTS], [f"{SCORE_RESULTS}:1", "metric", "scores file"]


@case("report: scores directory without scores")
def _(t, tiny):
    (t / "scores").mkdir()
    return ["report", t / "scores"], [t / "scores", "*.jsonl"]


@case("report: --plot is a directory")
def _(t, tiny):
    (t / "plot.png").mkdir()
    return ["report", SCORES, "--plot", t / "plot.png"], ["--plot", t / "plot.png", "directory"]


@case("report: --plot inside a regular file")
def _(t, tiny):
    f = write(t / "taken", "x")
    return ["report", SCORES, "--plot", f / "plot.png"], ["--plot", f]


@case("report: --resamples 5")
def _(t, tiny):
    return ["report", SCORES, "--resamples", "5"], ["--resamples", "100"]


@case("report: --format not a choice")
def _(t, tiny):
    return ["report", SCORES, "--format", "pdf"], ["--format", "pdf"]


@case("report: no scores given")
def _(t, tiny):
    return ["report"], ["SCORES"]


@case("report: --config with non-UTF-8 lem.toml")
def _(t, tiny):
    f = write(t / "lem.toml", b"[report]\nbaseline = 'caf\xe9'\n")
    return ["report", "--config", f], [f"{f}:2", "UTF-8"]


# --- verify


@case("verify: directory missing")
def _(t, tiny):
    return ["verify", t / "nodir"], [t / "nodir", "not a directory"]


@case("verify: no manifests")
def _(t, tiny):
    return ["verify", t], [t, "manifest.json"]


@case("verify: DIRECTORY is a file")
def _(t, tiny):
    f = write(t / "taken", "x")
    return ["verify", f], [f]


# --- model import / fetch


@case("model import: GGUF missing")
def _(t, tiny):
    return ["model", "import", t / "none.gguf", "--out", t / "m"], [t / "none.gguf", "not found"]


@case("model import: not a GGUF")
def _(t, tiny):
    f = write(t / "model.gguf", "plain text\n")
    return ["model", "import", f, "--out", t / "m"], [f, "GGUF"]


@case("model import: GGUF is a directory")
def _(t, tiny):
    (t / "model.gguf").mkdir()
    return ["model", "import", t / "model.gguf", "--out", t / "m"], [t / "model.gguf", "directory"]


@case("model import: --out is a regular file")
def _(t, tiny):
    g = write(t / "model.gguf", "plain text\n")
    f = write(t / "taken", "x")
    return ["model", "import", g, "--out", f], ["--out", f]


@case("model import: --dtype not a choice")
def _(t, tiny):
    g = write(t / "model.gguf", "plain text\n")
    return ["model", "import", g, "--out", t / "m", "--dtype", "int3"], ["--dtype", "int3"]


@case("model fetch: unknown name")
def _(t, tiny):
    return ["model", "fetch", "gpt-5"], ["gpt-5"]


@case("model fetch: --out is a regular file")
def _(t, tiny):
    f = write(t / "taken", "x")
    return ["model", "fetch", "--out", f], ["--out", f]


# --- chat


@case("chat: model missing")
def _(t, tiny):
    return ["chat", t / "no-model", "-p", "hi"], [t / "no-model", "lem model fetch"]


@case("chat: --kernel missing")
def _(t, tiny):
    return ["chat", tiny, "--kernel", t / "nokernel", "-p", "hi"], [t / "nokernel"]


@case("chat: non-UTF-8 kernel.md")
def _(t, tiny):
    k = kernel_dir(t / "k", b"Be kind to the caf\xe9 owner.\n")
    return ["chat", tiny, "--kernel", k, "-p", "hi"], [f"{k / 'kernel.md'}:1", "UTF-8"]


@case("chat: --adapter is no adapter")
def _(t, tiny):
    (t / "noadapter").mkdir()
    return ["chat", tiny, "--adapter", t / "noadapter", "-p", "hi"], [t / "noadapter"]


@case("chat: --max-tokens 0")
def _(t, tiny):
    return ["chat", tiny, "--max-tokens", "0", "-p", "hi"], ["--max-tokens"]


# --- the command line itself


@case("lem: unknown command")
def _(t, tiny):
    return ["trian"], ["trian"]


@case("kernel: unknown subcommand")
def _(t, tiny):
    return ["kernel", "chek"], ["chek"]


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 60
    commands = {name.split(":")[0].split(" ")[0] for name in CASES}
    wanted = {"init", "run", "kernel", "generate", "train", "fuse", "bench", "score"}
    assert wanted | {"report", "verify", "model", "chat"} <= commands


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line(name, tmp_path, tiny_llama_dir, monkeypatch):
    monkeypatch.setenv("LEM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    work = tmp_path / "w"
    work.mkdir()
    args, named = CASES[name](work, tiny_llama_dir)
    one_line_error(invoke(*args), *named)


# ---------------------------------------------------------------- cases that do work first


def test_every_teacher_call_failing_is_an_error_not_success(tmp_path, monkeypatch):
    monkeypatch.setenv("LEM_HOME", str(tmp_path / "home"))
    seeds = write(tmp_path / "seeds.jsonl", seed_line(1) + seed_line(2))
    with FakeOpenAI(lambda r: Reply(status=400, message="model not loaded")) as teacher:
        args = ["generate", "--teacher", "openai/t", "--teacher-base-url", teacher.base_url]
        args += ["--seeds", seeds, "--out", tmp_path / "out", "--max-retries", "0"]
        line = one_line_error(invoke(*args), "model not loaded", after_progress=True)
    assert "kept 0" not in line
    assert not (tmp_path / "out" / "train.jsonl").exists()


def test_verify_names_a_damaged_manifest(tmp_path):
    write(tmp_path / "a" / "manifest.json", b'{"stage": "caf\xe9"}')
    write(tmp_path / "b" / "manifest.json", "{not json")
    result = invoke("verify", tmp_path)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    bad = [ln for ln in result.stdout.splitlines() if ln.startswith("BAD")]
    assert len(bad) == 2
    assert str(tmp_path / "a" / "manifest.json") in bad[0] and "UTF-8" in bad[0]
    assert str(tmp_path / "b" / "manifest.json") in bad[1]


# ---------------------------------------------------------------- end to end, as a process


def run_lem(*args: object, env: dict | None = None, cwd: Path | None = None):
    return subprocess.run(
        [sys.executable, "-m", "lem", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=300,
    )


def process_one_line(done: subprocess.CompletedProcess, *named: object) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    for fragment in named:
        assert str(fragment) in lines[0], (fragment, lines[0])


def test_end_to_end_non_utf8_seeds(tmp_path):
    f = write(tmp_path / "seeds.jsonl", b'{"id": "S1", "domain": "care", "prompt": "caf\xe9"}\n')
    process_one_line(run_lem("kernel", "check", "--seeds", f), f"{f}:1", "UTF-8")


def test_end_to_end_broken_model_config_in_bench(tmp_path, tiny_llama_dir):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_llama_dir, broken)
    (broken / "config.json").write_text("{not json")
    args = ["bench", "-b", "gsm8k", "-m", f"x={broken}", "--data", GSM8K_ITEMS]
    process_one_line(run_lem(*args, "--out", tmp_path / "o"), broken / "config.json")


def test_end_to_end_score_reasks(tmp_path):
    process_one_line(run_lem(*score(tmp_path, SCORE_RESULTS, "--reasks", "-1")), "--reasks")


def test_end_to_end_bench_offline_without_data(tmp_path, tiny_llama_dir):
    """A hub-only benchmark with no network and no --data: one line, at once."""
    env = {"LEM_HOME": str(tmp_path / "home"), "HF_HOME": str(tmp_path / "hf")}
    env |= {"HF_HUB_OFFLINE": "1"}
    args = ["bench", "-b", "do_not_answer", "-m", f"x={tiny_llama_dir}", "--out", tmp_path / "o"]
    process_one_line(run_lem(*args, env=env), "do_not_answer", "--data")
    assert not (tmp_path / "o").exists()
