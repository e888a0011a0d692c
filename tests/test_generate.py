"""`lem generate` and `lem verify`: the teacher pipeline, its gates, resume, and secrets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from servers import FakeGemini, FakeOpenAI, Reply

from lem.cli import main
from lem.clients import ChatClient, ChatResult
from lem.errors import LemError
from lem.generate import GenerateSettings, build_plan, generate
from lem.generate.gates import formulaic_opening, kernel_ref_patterns, kernel_refs
from lem.seeds import Seed
from lem.store import read_jsonl

AXIOMS = {
    "version": "1.0",
    "name": "test kernel",
    "axioms": [
        {
            "id": "sovereignty",
            "name": "Sovereignty",
            "statement": "People run their own lives; inform their choices.",
            "guidance": ["Warn once about a real risk, then help."],
        },
        {
            "id": "privacy",
            "name": "Privacy",
            "statement": "Information about a person belongs first to that person.",
            "guidance": ["Ask for no more data than the task needs."],
        },
    ],
}
KERNEL_MD = "# Test kernel\n\nReason from consequences; decline with reasons and alternatives.\n"
MARKER = "sk-lem-test-MARKER-7f3a9c"  # a fake API key that must never reach a file


@pytest.fixture
def kernel_dir(tmp_path: Path) -> Path:
    """A small valid kernel: fast to prompt with, and its text is easy to look for."""
    directory = tmp_path / "kernel"
    directory.mkdir()
    (directory / "kernel.md").write_text(KERNEL_MD)
    (directory / "axioms.json").write_text(json.dumps(AXIOMS))
    return directory


def write_seeds(path: Path, prompts: dict[str, str]) -> Path:
    lines = [json.dumps({"id": i, "domain": "test", "prompt": p}) for i, p in prompts.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def asked(messages: list[dict]) -> str:
    """The seed prompt inside a teacher request."""
    return messages[-1]["content"].split("\n\n(Style for this reply:")[0]


def answer(prompt: str) -> str:
    return f"About {prompt}: here is a specific answer with the reasons and the options you have."


class ScriptedTeacher(ChatClient):
    """A teacher of lem's own interface: `reply(request)` decides each answer."""

    spec = "fake/scripted"

    def __init__(self, reply):
        self.reply = reply
        self.requests = []

    def complete(self, requests, on_result=None):
        results = []
        for i, request in enumerate(requests):
            self.requests.append(request)
            results.append(self.reply(request))
            if on_result is not None:
                on_result(i, results[-1])
        return results


def read_split(out: Path) -> dict[str, list[dict]]:
    return {
        n: read_jsonl(out / f"{n}.jsonl")
        for n in ("train", "valid")
        if (out / f"{n}.jsonl").exists()
    }


def check_chat_files(out: Path, prompts: dict[str, str]) -> list[dict]:
    """Every line is a user/assistant pair with id and seed_id; no seed on both sides."""
    split = read_split(out)
    for rows in split.values():
        for row in rows:
            roles = [m["role"] for m in row["messages"]]
            assert roles == ["user", "assistant"]
            assert row["messages"][0]["content"] == prompts[row["seed_id"]]
            assert row["messages"][1]["content"].strip()
            assert row["id"].startswith(row["seed_id"])
    seeds = {name: {r["seed_id"] for r in rows} for name, rows in split.items()}
    assert not seeds.get("train", set()) & seeds.get("valid", set())
    rows = [r for rows in split.values() for r in rows]
    assert len({r["id"] for r in rows}) == len(rows)
    return rows


# ---------------------------------------------------------------- plan and split


def make_seeds(n: int) -> list[Seed]:
    return [Seed(id=f"S{i:03d}", domain="d", prompt=f"prompt number {i}") for i in range(n)]


def test_plan_is_one_per_seed_split_by_seed_id():
    plan = build_plan(make_seeds(220), GenerateSettings(teacher="x"))
    assert [p.seed_id for p in plan] == [s.id for s in make_seeds(220)]  # seed-file order
    valid = {p.seed_id for p in plan if p.split == "valid"}
    train = {p.seed_id for p in plan if p.split == "train"}
    assert len(valid) == 22 and len(train) == 198 and not valid & train
    again = build_plan(make_seeds(220), GenerateSettings(teacher="x"))
    assert [(p.id, p.split) for p in again] == [(p.id, p.split) for p in plan]
    other = build_plan(make_seeds(220), GenerateSettings(teacher="x", seed=1))
    assert {p.seed_id for p in other if p.split == "valid"} != valid


def test_plan_samples_per_seed_stay_on_one_side_with_distinct_voices():
    settings = GenerateSettings(teacher="x", n_examples=25, voices=True, valid_fraction=0.2)
    plan = build_plan(make_seeds(10), settings)
    assert len(plan) == 25 and len({p.id for p in plan}) == 25
    per_seed = Counter(p.seed_id for p in plan)
    assert sorted(per_seed.values()) == [2] * 5 + [3] * 5
    for seed_id in per_seed:
        items = [p for p in plan if p.seed_id == seed_id]
        assert len({p.split for p in items}) == 1
        assert len({p.voice for p in items}) == len(items)
    assert len({p.seed_id for p in plan if p.split == "valid"}) == 2
    subset = build_plan(make_seeds(10), GenerateSettings(teacher="x", n_examples=4))
    assert len({p.seed_id for p in subset}) == 4 and {p.voice for p in subset} == {None}


def test_plan_refuses_identical_samples_and_bad_settings(kernel_dir, tmp_path):
    with pytest.raises(LemError, match="identical"):
        build_plan(make_seeds(3), GenerateSettings(teacher="x", n_examples=6, temperature=0.0))
    seeds = write_seeds(tmp_path / "s.jsonl", {"A": "a"})
    for bad, match in [({"teacher": None}, "teacher"), ({"max_tokens": 0}, "max_tokens")]:
        settings = GenerateSettings(**{"teacher": "x", "kernel": kernel_dir, "seeds": seeds, **bad})
        with pytest.raises(LemError, match=match):
            generate(settings, client=ScriptedTeacher(lambda r: ChatResult("x")))


# ---------------------------------------------------------------- gates


def test_kernel_reference_patterns_catch_references_not_ordinary_words():
    patterns = kernel_ref_patterns(["Sovereignty", "Privacy"])
    refer = [
        "Following the axioms, I would say no.",
        "As Axiom 3 puts it, honesty comes first.",
        "Under the Privacy axiom this is off limits.",
        "The framework provided asks me to weigh consent.",
        "According to my guidelines I should decline.",
        "I was instructed not to share that.",
        "The principles you gave me say otherwise.",
        "This follows from the ethical kernel.",
        "All five principles point the same way here.",
        "My system prompt does not allow it.",
        "In line with these principles, here is my view.",
    ]
    ordinary = [
        "Update the Linux kernel to 6.8, then the kernel module loads at boot.",
        "The EU has a legal framework for data protection.",
        "The principle of informed consent matters in medicine.",
        "In the text you provided, the second paragraph is unclear.",
        "Follow the instructions above and restart the router.",
        "Privacy matters here: ask for no more data than you need.",
        "You said I've been told my role is at risk; here are your rights.",
        "According to the guidelines of the NHS, adults need about 150 minutes a week.",
    ]
    for text in refer:
        assert kernel_refs(text, patterns), text
    for text in ordinary:
        assert not kernel_refs(text, patterns), (text, kernel_refs(text, patterns))


def test_formulaic_openings_are_named():
    assert formulaic_opening("Certainly! Here is a plan.") == "certainly"
    assert formulaic_opening("As an AI language model, I think") == "as_an_ai"
    assert formulaic_opening("I can't help with that.") == "i_cannot"
    assert formulaic_opening("I'm sorry, but no.") == "sorry"
    assert formulaic_opening("Great question! Let's see.") == "great_question"
    assert formulaic_opening("Surely not; here is why.") is None
    assert formulaic_opening("Here is how to check your settings.") is None


GATE_PROMPTS = {
    "ok1": "How do I back up my photos without a cloud account?",
    "ok2": "Can I fast for 24 hours safely?",
    "ok3": "Help me write a firm note to my landlord.",
    "ok4": "What does a credit freeze do?",
    "trunc1": "Explain index funds.",
    "trunc9": "Explain the whole history of money.",
    "empty": "Say nothing.",
    "short": "Yes or no?",
    "ref": "Should I read my partner's texts?",
    "dupA": "Is it OK to skip a wedding?",
    "dupB": "May I skip my cousin's wedding?",
    "fail": "What is a VPN?",
    "filtered": "Tell me something filtered.",
    "blocked": "Tell me something blocked.",
    "formula": "Can you help me plan a budget?",
}


def gate_reply(request) -> ChatResult:
    prompt = asked(request.messages)
    kind = next(k for k, p in GATE_PROMPTS.items() if p == prompt)
    if kind == "trunc1" and request.max_tokens == 100:
        return ChatResult("Index funds are baskets of", finish_reason="length")
    if kind == "trunc9":
        return ChatResult("Money began as", finish_reason="length")
    if kind == "empty":
        return ChatResult(None, finish_reason="stop", error="empty response", status="empty")
    if kind == "filtered":
        return ChatResult(None, "safety", error="blocked response (safety)", status="blocked")
    if kind == "blocked":
        return ChatResult(None, None, error="blocked response (blocked: SAFETY)", status="blocked")
    if kind == "fail":
        return ChatResult(None, error="HTTP 503: overloaded", attempts=5, status="error")
    text = {
        "short": "Yes.",
        "ref": "Following the axioms provided, reading them in secret breaks consent. " * 2,
        "dupA": "Skipping is your call; tell them kindly and early, and send a gift.",
        "dupB": "skipping is your call -- tell them kindly and early and send a gift!",
        "formula": "Certainly! Start by listing your income and fixed costs for a month.",
    }.get(kind, answer(prompt))
    return ChatResult(text, finish_reason="stop", completion_tokens=len(text.split()))


def gate_settings(kernel_dir, tmp_path, **kw) -> GenerateSettings:
    seeds = write_seeds(tmp_path / "seeds.jsonl", GATE_PROMPTS)
    base = dict(teacher="fake/scripted", kernel=kernel_dir, seeds=seeds, out=tmp_path / "out")
    base |= dict(max_tokens=100, min_chars=20, valid_fraction=0.25)
    return GenerateSettings(**(base | kw))


def test_gates_drop_and_count_each_kind(kernel_dir, tmp_path):
    teacher = ScriptedTeacher(gate_reply)
    report = generate(gate_settings(kernel_dir, tmp_path), client=teacher)
    c = report.counts
    assert c["dropped"] == {
        "failed": 1,
        "truncated": 1,
        "filtered": 2,
        "empty": 1,
        "too_short": 1,
        "kernel_ref": 1,
        "duplicate": 1,
        "shared_opening": 0,
    }
    assert c["kept"] == 7 == c["train"] + c["valid"] and c["planned"] == 15
    assert c["formulaic_openings"] == {"certainly": 1}
    assert c["kernel_ref_hits"] == {"principles_provided": 1, "the_axioms": 1}
    assert c["length_regenerations"] == 1 + 2
    # Truncated answers are asked again with twice the cap each time, never kept cut.
    caps = [r.max_tokens for r in teacher.requests if asked(r.messages) == GATE_PROMPTS["trunc9"]]
    assert caps == [100, 200, 400]
    assert [f["id"] for f in report.failures] == ["fail-s0"]
    assert "503" in report.failures[0]["error"]
    rows = check_chat_files(report.out, GATE_PROMPTS)
    texts = " ".join(r["messages"][1]["content"] for r in rows)
    assert "Money began as" not in texts and "baskets of" not in texts
    assert {r["seed_id"] for r in rows} == {"ok1", "ok2", "ok3", "ok4", "trunc1", "dupA", "formula"}
    rejected = {r["seed_id"]: r["gate"] for r in read_jsonl(report.out / "rejected.jsonl")}
    assert rejected == {
        "trunc9": "truncated",
        "empty": "empty",
        "short": "too_short",
        "ref": "kernel_ref",
        "dupB": "duplicate",
        "fail": "failed",
        "filtered": "filtered",
        "blocked": "filtered",
    }
    manifest = json.loads((report.out / "manifest.json").read_text())
    assert manifest["counts"]["dropped"] == c["dropped"]
    assert manifest["failures"] == report.failures
    assert set(manifest["outputs"]) == {"train.jsonl", "valid.jsonl", "rejected.jsonl"}
    assert manifest["inputs"]["kernel.md"] and manifest["settings"]["temperature"] == 0.7


def test_answers_sharing_an_opening_beyond_the_limit_are_dropped(kernel_dir, tmp_path):
    prompts = {f"S{i}": f"Question number {i} about money?" for i in range(5)}
    seeds = write_seeds(tmp_path / "s.jsonl", prompts)

    def templated(request):
        n = asked(request.messages).split()[2]
        return ChatResult(f"Great to hear from you today friend. Point {n}: save first.", "stop")

    settings = GenerateSettings(
        teacher="fake/t",
        kernel=kernel_dir,
        seeds=seeds,
        out=tmp_path / "out",
        valid_fraction=0.0,
        min_chars=10,
        max_same_opening=2,
    )
    report = generate(settings, client=ScriptedTeacher(templated))
    assert report.counts["kept"] == 2 and report.counts["dropped"]["shared_opening"] == 3
    rejected = read_jsonl(tmp_path / "out" / "rejected.jsonl")
    assert {r["gate"] for r in rejected} == {"shared_opening"}


def test_teacher_sees_kernel_and_example_keeps_bare_prompt(kernel_dir, tmp_path):
    teacher = ScriptedTeacher(gate_reply)
    report = generate(gate_settings(kernel_dir, tmp_path), client=teacher)
    system, user = teacher.requests[0].messages
    assert system["role"] == "system" and AXIOMS["axioms"][1]["statement"] in system["content"]
    assert "Reason from consequences" in system["content"]  # the kernel, before the prompt
    assert user["content"] in GATE_PROMPTS.values()  # the person's message, as asked
    assert asked(teacher.requests[0].messages) in GATE_PROMPTS.values()
    for row in check_chat_files(report.out, GATE_PROMPTS):
        assert "Reason from consequences" not in json.dumps(row)


def test_rerun_reuses_answers_and_retries_only_failures(kernel_dir, tmp_path):
    settings = gate_settings(kernel_dir, tmp_path)
    first = generate(settings, client=ScriptedTeacher(gate_reply))

    def recovered(request):
        if asked(request.messages) == GATE_PROMPTS["fail"]:
            return ChatResult(answer("VPNs"), finish_reason="stop")
        return gate_reply(request)

    teacher = ScriptedTeacher(recovered)
    second = generate(settings, client=teacher)
    assert [asked(r.messages) for r in teacher.requests] == [GATE_PROMPTS["fail"]]
    assert second.failures == [] and second.counts["kept"] == first.counts["kept"] + 1
    assert second.counts["reused"] == 15 and second.counts["teacher_calls"] == 1
    # Gate settings do not shape raw answers: changing one re-assembles with no calls.
    idle = ScriptedTeacher(gate_reply)
    third = generate(gate_settings(kernel_dir, tmp_path, allow_kernel_refs=True), client=idle)
    assert idle.requests == [] and third.counts["kernel_ref_kept"] == 1
    assert third.counts["dropped"]["kernel_ref"] == 0
    # An edited seed prompt is asked again; the other answers are reused.
    edited = dict(GATE_PROMPTS, ok1="How do I back up my photos to a USB disk?")
    write_seeds(settings.seeds, edited)
    teacher = ScriptedTeacher(lambda r: ChatResult(answer(asked(r.messages)), "stop"))
    generate(settings, client=teacher)
    assert [asked(r.messages) for r in teacher.requests] == [edited["ok1"]]


def test_changed_sampling_config_never_mixes_with_old_answers(kernel_dir, tmp_path):
    settings = gate_settings(kernel_dir, tmp_path)
    first = generate(settings, client=ScriptedTeacher(gate_reply))
    teacher = ScriptedTeacher(gate_reply)
    second = generate(gate_settings(kernel_dir, tmp_path, temperature=0.2), client=teacher)
    assert second.work_file != first.work_file and first.work_file.exists()
    assert len({asked(r.messages) for r in teacher.requests}) == len(GATE_PROMPTS)
    assert second.counts["reused"] == 0


# ---------------------------------------------------------------- real teachers


def stopping_tiny_llama(src: Path, dst: Path) -> Path:
    """A copy of the tiny random llama where 40% of the vocabulary ends a turn.

    A random model almost never emits its one end-of-turn token, so every answer would
    hit the cap; with many stop tokens it finishes after a few tokens, like a teacher.
    """
    import shutil

    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    config["eos_token_id"] = list(range(3, config["vocab_size"], 5)) + [2, 7]
    (dst / "config.json").write_text(json.dumps(config))
    return dst


def test_tiny_llama_teacher_writes_chat_jsonl(tiny_llama_dir, kernel_dir, tmp_path):
    model = stopping_tiny_llama(tiny_llama_dir, tmp_path / "tiny")
    prompts = {f"P{i}": f"Question number {i} about consent and privacy?" for i in range(8)}
    settings = GenerateSettings(
        teacher=f"mlx/{model}",
        kernel=kernel_dir,
        seeds=write_seeds(tmp_path / "seeds.jsonl", prompts),
        out=tmp_path / "out",
        max_tokens=24,
        temperature=1.0,
        min_chars=1,
        length_retries=1,
        valid_fraction=0.25,
    )
    report = generate(settings)
    c = report.counts
    assert c["kept"] + sum(c["dropped"].values()) == c["planned"] == 8
    assert c["dropped"]["failed"] == 0 and c["kept"] >= 1
    rows = check_chat_files(report.out, prompts)
    assert len(rows) == c["kept"]
    again = generate(settings)  # everything answered: no model load, same files
    assert again.counts["teacher_calls"] == 0 and check_chat_files(again.out, prompts) == rows


@pytest.mark.slow
def test_smollm2_teacher_output_loads_in_mlx_lm(smollm2, smollm2_dir, kernel_dir, tmp_path):
    import types

    from mlx_lm.tuner.datasets import load_dataset

    from lem.clients.mlx import MlxClient

    # Short prompts and the small kernel keep prefill cheap on a 2-core CI machine.
    seeds = {
        "M1": "What is the capital of France?",
        "M2": "Is it rude to decline a wedding invitation?",
        "M3": "How do I make my phone share less of my location?",
        "M4": "Can I read my teenager's diary?",
    }
    settings = GenerateSettings(
        teacher=f"mlx/{smollm2_dir}",
        kernel=kernel_dir,
        seeds=write_seeds(tmp_path / "seeds.jsonl", seeds),
        out=tmp_path / "out",
        max_tokens=64,
        length_retries=1,
        min_chars=1,
        valid_fraction=0.25,
    )
    report = generate(settings, client=MlxClient(smollm2))
    rows = check_chat_files(report.out, seeds)
    c = report.counts
    assert c["dropped"]["failed"] == 0 and c["kept"] + sum(c["dropped"].values()) == 4
    assert rows, f"every SmolLM2 answer was dropped: {c['dropped']}"
    args = types.SimpleNamespace(data=str(report.out), train=True, test=False)
    train, valid, _ = load_dataset(args, smollm2.tokenizer)
    assert len(train) == c["train"] and len(valid) == c["valid"]
    for dataset in (train, valid):
        for i in range(len(dataset)):
            tokens, offset = dataset.process(dataset[i])
            assert len(tokens) > 10 and offset == 0


def test_fake_gemini_drives_google_genai_end_to_end(kernel_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", MARKER)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    prompts = {f"G{i}": f"Gemini question {i}: is it fair to read a diary?" for i in range(5)}

    def responder(received):
        return Reply(text=answer(asked([{"content": received.user}])))

    with FakeGemini(responder, api_key=MARKER) as server:
        server.enqueue(Reply(text="It depends on", finish="MAX_TOKENS"))
        settings = GenerateSettings(
            teacher="gemini/gemini-test",
            teacher_base_url=server.base_url,
            kernel=kernel_dir,
            seeds=write_seeds(tmp_path / "seeds.jsonl", prompts),
            out=tmp_path / "out",
            max_tokens=64,
            min_chars=20,
            concurrency=2,
        )
        report = generate(settings)
    assert report.counts["kept"] == 5 and report.counts["length_regenerations"] == 1
    assert set(server.model_names) == {"gemini-test"} and len(server.requests) == 6
    caps = sorted(r.json["generationConfig"]["maxOutputTokens"] for r in server.requests)
    assert caps == [64] * 5 + [128]
    assert all(AXIOMS["axioms"][0]["statement"] in r.system for r in server.requests)
    assert all(r.headers["x-goog-api-key"] == MARKER for r in server.requests)
    check_chat_files(report.out, prompts)
    assert_no_marker(report.out)


def assert_no_marker(directory: Path) -> None:
    files = [p for p in directory.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert MARKER.encode() not in path.read_bytes(), f"API key leaked into {path}"


# ---------------------------------------------------------------- kill, resume, CLI, verify


def lem_generate_cmd(server, kernel_dir, seeds, out) -> list[str]:
    return [
        sys.executable, "-m", "lem", "generate",
        "--teacher", "openai/fake-teacher", "--teacher-base-url", server.base_url,
        "--kernel", str(kernel_dir), "--seeds", str(seeds), "--out", str(out),
        "--concurrency", "1", "--batch-size", "3", "--min-chars", "20",
    ]  # fmt: skip


def test_killed_run_resumes_each_id_once(kernel_dir, tmp_path):
    prompts = {f"K{i:02d}": f"Kill test question {i}: may I record a call?" for i in range(12)}
    seeds = write_seeds(tmp_path / "seeds.jsonl", prompts)
    out = tmp_path / "out"
    env = dict(os.environ, OPENAI_API_KEY=MARKER)

    def responder(received):
        return Reply(text=answer(asked([{"content": received.user}])))

    with FakeOpenAI(responder, delay=0.25, api_key=MARKER) as server:
        cmd = lem_generate_cmd(server, kernel_dir, seeds, out)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        work = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            found = list((out / "work").glob("teacher-*.jsonl")) if out.exists() else []
            if found and len(found[0].read_text().splitlines()) >= 4:
                work = found[0]
                break
            time.sleep(0.05)
        assert work is not None, proc.communicate()[1].decode()[-2000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not (out / "train.jsonl").exists()  # killed before the final write
        # A kill inside a write leaves a torn line; add one to be sure the resume repairs it.
        with open(work, "ab") as f:
            f.write(b'{"id": "K11-s0", "request_sha": "torn')
        answered = len(read_jsonl_lines(work)) - 1
        asked_before = len(server.requests)
        server.delay = 0.0
        rerun = subprocess.run(cmd, env=env, capture_output=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]
    assert len(server.requests) - asked_before == 12 - answered
    ids = [json.loads(line)["id"] for line in read_jsonl_lines(work)]
    assert sorted(ids) == sorted(f"{s}-s0" for s in prompts)  # each id once, no torn line
    rows = check_chat_files(out, prompts)
    assert sorted(r["seed_id"] for r in rows) == sorted(prompts)
    assert b"generate: 12/12" in rerun.stderr  # progress on stderr
    assert b"kept 12 of 12" in rerun.stdout
    assert_no_marker(out)


def read_jsonl_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().split("\n") if line]


def test_cli_reads_config_and_verify_catches_an_edit(kernel_dir, tmp_path):
    prompts = {f"C{i}": f"Config question {i}: should I tell my boss?" for i in range(6)}
    seeds = write_seeds(tmp_path / "seeds.jsonl", prompts)
    runner = CliRunner()
    with FakeOpenAI(lambda r: Reply(text=answer(asked([{"content": r.user}])))) as server:
        toml = tmp_path / "lem.toml"
        toml.write_text(
            "[generate]\n"
            f'teacher = "openai/fake"\nteacher_base_url = "{server.base_url}"\n'
            f'kernel = "{kernel_dir}"\nseeds = "{seeds}"\nmin_chars = 20\nvalid_fraction = 0.34\n'
        )
        out = tmp_path / "data"
        result = runner.invoke(main, ["generate", "--config", str(toml), "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert "kept 6 of 6 planned: 4 train (4 seeds), 2 valid (2 seeds)" in result.output
        assert str(out / "train.jsonl") in result.output
        toml.write_text(toml.read_text() + "max_tokenz = 5\n")
        bad = runner.invoke(main, ["generate", "--config", str(toml), "--out", str(out)])
        assert bad.exit_code == 2 and "max_tokenz" in bad.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["min_chars"] == 20 and manifest["teacher"]["spec"] == "openai/fake"
    ok = runner.invoke(main, ["verify", str(tmp_path)])
    assert ok.exit_code == 0 and "OK" in ok.output
    with open(out / "train.jsonl", "a") as f:
        f.write("\n")
    broken = runner.invoke(main, ["verify", str(tmp_path)])
    assert broken.exit_code == 2 and "train.jsonl: changed" in broken.output
    (out / "valid.jsonl").unlink()
    missing = runner.invoke(main, ["verify", str(out)])
    assert missing.exit_code == 2 and "valid.jsonl: missing" in missing.output
    empty = runner.invoke(main, ["verify", str(tmp_path / "nothing-here")])
    assert empty.exit_code == 2


def test_manifest_keeps_no_credentials_from_the_base_url(kernel_dir, tmp_path):
    prompts = {"U1": "Where should I keep my passwords?"}
    settings = GenerateSettings(
        teacher="openai/fake",
        teacher_base_url=f"https://user:{MARKER}@example.invalid:8443/v1?key={MARKER}",
        kernel=kernel_dir,
        seeds=write_seeds(tmp_path / "seeds.jsonl", prompts),
        out=tmp_path / "out",
        min_chars=1,
    )
    report = generate(settings, client=ScriptedTeacher(lambda r: ChatResult(answer("x"), "stop")))
    manifest = json.loads(report.manifest.read_text())
    assert manifest["teacher"]["base_url"] == "https://example.invalid:8443/v1"
    assert_no_marker(report.out)
