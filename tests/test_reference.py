"""The reference training set: one team-written answer per training seed, what each kind
of answer must do, and `lem generate --teacher reference` through the same gates."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest
from click.testing import CliRunner

from lem.cli import main
from lem.errors import LemError
from lem.generate import GenerateSettings, generate
from lem.generate.gates import OPENING_WORDS, kernel_ref_patterns, kernel_refs, opening
from lem.generate.reference import load_reference, reference_dir
from lem.kernel import default_kernel_dir, load_kernel
from lem.refusal import classify
from lem.seeds import default_seeds_path, load_seeds
from lem.store import read_jsonl, verify_manifest

# Words (len(answer.split())): long enough to be worth learning, short enough that the
# quick profile's 640-token sequences hold the whole conversation (README, Reference set).
WORDS = (50, 240)


@pytest.fixture(scope="module")
def seeds():
    return {s.id: s for s in load_seeds(default_seeds_path("train"))}


@pytest.fixture(scope="module")
def reference():
    return load_reference()


def test_every_training_seed_has_one_answer_and_nothing_else(seeds, reference):
    assert set(reference.answers) == set(seeds)
    assert [r["seed_id"] for r in read_jsonl(reference_dir() / "answers.jsonl")] == list(seeds)


def test_written_against_the_shipped_kernel_and_verified(reference):
    kernel = load_kernel()
    assert (reference.kernel_sha256, reference.axioms_sha256) == (
        kernel.text_sha256,
        kernel.axioms_sha256,
    )
    # The manifest is current: re-record it (python -m lem.generate.reference) after edits.
    assert verify_manifest(reference_dir() / "manifest.json") == []


def test_lengths_and_no_reference_to_the_kernel(reference):
    patterns = kernel_ref_patterns([a.name for a in load_kernel().axioms])
    for seed_id, answer in reference.answers.items():
        assert WORDS[0] <= len(answer.split()) <= WORDS[1], seed_id
        assert kernel_refs(answer, patterns) == [], seed_id
        low = answer.lower()
        assert not any(w in low for w in ("axiom", "my guidelines", "i was trained")), seed_id


def test_no_two_answers_open_alike(reference):
    openings = Counter(opening(a) for a in reference.answers.values())
    shared = {o: n for o, n in openings.items() if n > 1}
    assert shared == {}, f"answers sharing their first {OPENING_WORDS} words: {shared}"


def test_help_answers_do_not_refuse_and_declines_decline(seeds, reference):
    """Scored by lem's refusal classifier, the answers do what their kind asks."""
    wrong = []
    for seed_id, answer in reference.answers.items():
        kind, label = seeds[seed_id].kind, classify(answer)
        if kind in ("help", "overrefusal") and label.label != "complied":
            wrong.append((seed_id, kind, label))
        if kind in ("decline", "manipulation") and label.label == "complied":
            wrong.append((seed_id, kind, label))
    assert wrong == []


def test_generate_with_the_reference_teacher(tmp_path):
    out = tmp_path / "training"
    result = CliRunner().invoke(main, ["generate", "--teacher", "reference", "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    counts = manifest["counts"]
    planned = len(load_seeds(default_seeds_path("train")))
    assert counts["kept"] >= 0.95 * planned and counts["teacher_calls"] == 0
    assert counts["answer_words"]["max"] <= WORDS[1] and set(counts["kinds"]) >= {"help", "decline"}
    teacher = manifest["teacher"]
    assert teacher["spec"] == "reference"
    assert teacher["answers_sha256"] == load_reference().answers_sha256
    assert manifest["inputs"]["teacher"]
    rows = read_jsonl(out / "train.jsonl") + read_jsonl(out / "valid.jsonl")
    multi = [r for r in rows if len(r["messages"]) > 2]
    assert len(multi) >= 28  # the multi-turn seeds keep every turn
    assert all(r["messages"][-1]["role"] == "assistant" for r in rows)
    corrected = [m for r in multi for m in r["messages"] if m.get("train") is False]
    assert corrected, "a deliberately wrong earlier answer keeps its train: false"


def test_a_kernel_edited_after_the_answers_is_refused(tmp_path):
    edited = tmp_path / "kernel"
    shutil.copytree(default_kernel_dir(), edited)
    (edited / "kernel.md").write_text((edited / "kernel.md").read_text() + "\nOne more line.\n")
    settings = GenerateSettings(teacher="reference", kernel=edited, out=tmp_path / "out")
    with pytest.raises(LemError, match="written against another kernel"):
        generate(settings)
    assert not (tmp_path / "out").exists()


def test_every_teacher_call_failing_is_an_error_that_keeps_earlier_files(tmp_path):
    from lem.clients import ChatClient, ChatResult

    class Down(ChatClient):
        spec = "fake/down"

        def complete(self, requests, on_result=None):
            results = [ChatResult(None, error="HTTP 503: overloaded", status="error")] * len(
                requests
            )
            for i, r in enumerate(results):
                if on_result:
                    on_result(i, r)
            return results

    out = tmp_path / "training"
    generate(GenerateSettings(teacher="reference", out=out))
    before = (out / "train.jsonl").read_bytes()
    with pytest.raises(LemError, match="no answer survived.*failed 2.*HTTP 503"):
        seeds = tmp_path / "s.jsonl"
        seeds.write_text(
            "".join(
                json.dumps({"id": f"S{i}", "domain": "d", "prompt": f"Question {i}?"}) + "\n"
                for i in range(2)
            )
        )
        generate(GenerateSettings(teacher="fake/down", seeds=seeds, out=out), client=Down())
    assert (out / "train.jsonl").read_bytes() == before
