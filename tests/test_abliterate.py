"""lem abliterate: residual capture, direction math, the edit, objectives, the resumable
search, the command; and one slow end-to-end run on a refusal-trained SmolLM2."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import lem  # noqa: F401  (the CPU fast path, before mlx)
from lem.abliterate import AbliterateSettings, abliterate, export
from lem.abliterate.direction import benign_basis, layer_direction, refusal_directions
from lem.abliterate.edit import Editor, Profile, edited, matrix, save_adapter, set_matrix
from lem.abliterate.objectives import Answer, first_token_logprobs, judge_refusals, kl_divergence
from lem.abliterate.prompts import Prompt, load_prompts, split_prompts
from lem.abliterate.residuals import last_token_states
from lem.errors import LemError

FIXTURES = Path(__file__).parent / "fixtures" / "abliterate"
TEXTS = [
    "hi",
    "The capital of France is Paris.",
    "Question: what is 12 times 3? Answer: 36.",
    "Respect the person's choices, protect their privacy, explain your reasoning.",
    "two plus two",
    "I can't help with that, but here is what I can do instead.",
]


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir):
    from lem.models import load_model

    return load_model(tiny_llama_dir)


def ids_of(loaded, texts=TEXTS):
    from lem.abliterate.objectives import encode

    return [encode(loaded, t) for t in texts]


# ---------------------------------------------------------------- residuals


def tiny_family(kind: str):
    """A random 3-layer model of another mlx-lm family, built in memory."""
    import mlx.core as mx

    common = {"hidden_size": 32, "num_hidden_layers": 3, "intermediate_size": 64}
    common |= {"num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 96}
    common |= {"rms_norm_eps": 1e-5}
    mx.random.seed(1)
    if kind == "qwen2":
        from mlx_lm.models import qwen2 as family

        args = family.ModelArgs(model_type="qwen2", **common)
    elif kind == "qwen3":
        from mlx_lm.models import qwen3 as family

        args = family.ModelArgs(
            model_type="qwen3",
            **common,
            max_position_embeddings=256,
            head_dim=8,
            tie_word_embeddings=True,
            rope_theta=10000.0,
        )
    else:
        from mlx_lm.models import gemma3 as family

        text = common | {"model_type": "gemma3_text", "head_dim": 8, "sliding_window": 4}
        text |= {"sliding_window_pattern": 2, "query_pre_attn_scalar": 8}
        args = family.ModelArgs(model_type="gemma3", text_config=text, vocab_size=96)
    model = family.Model(args)
    mx.eval(model.parameters())
    return model


def test_residuals_have_one_state_per_prompt_and_layer(tiny):
    states = last_token_states(tiny.model, ids_of(tiny), batch_size=4)
    assert states.shape == (len(TEXTS), 2, 64)
    assert states.dtype == np.float32


def test_batched_residuals_equal_one_prompt_at_a_time(tiny):
    prompts = ids_of(tiny)
    batched = last_token_states(tiny.model, prompts, batch_size=len(prompts))
    alone = last_token_states(tiny.model, prompts, batch_size=1)
    np.testing.assert_allclose(batched, alone, atol=1e-5)


def test_the_last_state_is_the_models_own_hidden_state(tiny):
    """The tap sees what the model computes: the last layer's state, normed, is the input
    of the vocabulary projection the model applies itself."""
    import mlx.core as mx

    prompt = ids_of(tiny)[1]
    states = last_token_states(tiny.model, [prompt])
    inner = tiny.model.model
    h = inner.norm(mx.array(states[:, -1]))
    logits = inner.embed_tokens.as_linear(h)
    full = tiny.model(mx.array([prompt]))[:, -1]
    np.testing.assert_allclose(np.array(logits), np.array(full), atol=1e-4)


@pytest.mark.parametrize("kind", ["qwen2", "qwen3", "gemma3"])
def test_other_families_batch_the_same(kind):
    model = tiny_family(kind)
    rng = np.random.default_rng(0)
    prompts = [[int(x) for x in rng.integers(1, 96, size=n)] for n in (3, 9, 5, 12, 1)]
    batched = last_token_states(model, prompts, batch_size=5)
    alone = last_token_states(model, prompts, batch_size=1)
    assert batched.shape == (5, 3, 32)
    np.testing.assert_allclose(batched, alone, atol=1e-4)


def test_layers_are_put_back_after_capture(tiny):
    before = list(tiny.model.layers)
    names = sorted(k for k, _ in tiny.model.parameters().items())
    last_token_states(tiny.model, ids_of(tiny)[:2])
    assert all(a is b for a, b in zip(tiny.model.layers, before, strict=True))
    assert sorted(k for k, _ in tiny.model.parameters().items()) == names


# ---------------------------------------------------------------- direction


def synthetic_states(seed=0, n=40, d=6):
    """Harmless states varying mostly along e1; harmful ones shifted along e0 + e1."""
    rng = np.random.default_rng(seed)
    harmless = rng.normal(size=(n, d)) * 0.1
    harmless[:, 1] += rng.normal(size=n) * 3.0
    harmless += np.array([0.0, 0.0, 2.0, 0.0, 0.0, 0.0])
    harmful = rng.normal(size=(n, d)) * 0.1 + harmless.mean(axis=0)
    harmful += np.array([1.0, 0.5, 0.0, 0.0, 0.0, 0.0])
    return harmful, harmless


def test_plain_direction_is_the_normalised_difference_of_means():
    harmful, harmless = synthetic_states()
    r, gap = layer_direction(harmful, harmless, benign_rank=0, orthogonalize=False)
    diff = harmful.mean(axis=0) - harmless.mean(axis=0)
    np.testing.assert_allclose(r, diff / np.linalg.norm(diff), atol=1e-12)
    assert gap == pytest.approx(np.linalg.norm(diff))


def test_benign_subspace_is_projected_out_before_normalising():
    harmful, harmless = synthetic_states()
    r, _ = layer_direction(harmful, harmless, benign_rank=1, orthogonalize=False)
    # The top principal direction of the harmless states, by hand: eigenvector of cov.
    cov = np.cov(harmless, rowvar=False)
    u = np.linalg.eigh(cov)[1][:, -1]
    diff = harmful.mean(axis=0) - harmless.mean(axis=0)
    expected = diff - u * (u @ diff)
    np.testing.assert_allclose(r, expected / np.linalg.norm(expected), atol=1e-9)
    assert abs(r @ u) < 1e-9
    assert abs(r[1]) < 0.05  # the harmless variation (along e1) is left alone
    np.testing.assert_allclose(benign_basis(harmless, 1)[:, 0] ** 2, u**2, atol=1e-9)


def test_orthogonalising_also_clears_the_harmless_mean():
    harmful, harmless = synthetic_states()
    r, _ = layer_direction(harmful, harmless, benign_rank=1, orthogonalize=True)
    mean = harmless.mean(axis=0)
    assert abs(r @ mean) < 1e-9
    assert abs(r @ benign_basis(harmless, 1)[:, 0]) < 1e-9
    assert np.linalg.norm(r) == pytest.approx(1.0)


def test_directions_per_layer_and_bad_ranks():
    harmful, harmless = synthetic_states()
    stack = np.stack([harmful, harmful * 2], axis=1), np.stack([harmless, harmless * 2], axis=1)
    d = refusal_directions(*stack, benign_rank=2)
    assert d.vectors.shape == (2, 6)
    np.testing.assert_allclose(np.linalg.norm(d.vectors, axis=1), 1.0, atol=1e-6)
    with pytest.raises(LemError, match="benign_rank 40: needs at least 41 harmless prompts"):
        refusal_directions(*stack, benign_rank=40)
    with pytest.raises(LemError, match="no direction"):
        layer_direction(harmless, harmless, 0, False)


# ---------------------------------------------------------------- the edit


def test_edit_is_w_minus_lambda_r_rT_w():
    import mlx.core as mx

    rng = np.random.default_rng(0)
    w = rng.normal(size=(8, 5)).astype(np.float32)
    r = rng.normal(size=8).astype(np.float32)
    r /= np.linalg.norm(r)
    out = np.array(edited(mx.array(w), mx.array(r), 0.7))
    np.testing.assert_allclose(out, w - 0.7 * np.outer(r, r) @ w, atol=1e-5)
    # lambda 1 removes r from everything the matrix writes
    removed = np.array(edited(mx.array(w), mx.array(r), 1.0))
    np.testing.assert_allclose(r @ removed, 0.0, atol=1e-5)


def test_layer_profile_is_a_triangle():
    assert Profile(peak=4, span=2, weight=1.5).weights(8) == [0, 0, 0, 0.75, 1.5, 0.75, 0, 0]
    w = Profile(peak=6.5, span=3.0, weight=1.0).weights(8)
    assert w[6] == w[7] == pytest.approx(5 / 6) and w[3] == 0 and w[4] == pytest.approx(1 / 6)
    assert max(Profile(peak=2, span=100, weight=0.5).weights(3)) == 0.5


def weights_of(model) -> dict[str, np.ndarray]:
    from lem.abliterate.edit import targets

    return {f"{t.layer}.{t.key}": np.array(matrix(t.module)) for t in targets(model)}


def test_editor_applies_the_profile_and_restores(tiny):
    import mlx.core as mx

    editor = Editor(tiny.model)
    before = weights_of(tiny.model)
    r = np.random.default_rng(0).normal(size=64).astype(np.float32)
    r /= np.linalg.norm(r)
    editor.apply(r, [0.0, 1.5])
    after = weights_of(tiny.model)
    assert np.array_equal(after["0.self_attn.o_proj"], before["0.self_attn.o_proj"])
    for key in ("1.self_attn.o_proj", "1.mlp.down_proj"):
        expected = np.array(edited(mx.array(before[key]), mx.array(r), 1.5))
        np.testing.assert_allclose(after[key], expected, atol=1e-6)
    editor.restore()
    assert all(np.array_equal(weights_of(tiny.model)[k], v) for k, v in before.items())


def test_rank_one_adapter_fused_equals_the_direct_edit(tiny_llama_dir, tmp_path):
    from lem.abliterate.edit import EditRecord
    from lem.fuse import fuse
    from lem.models import load_model

    loaded = load_model(tiny_llama_dir)
    r = np.random.default_rng(1).normal(size=64).astype(np.float32)
    r /= np.linalg.norm(r)
    profile = Profile(1.0, 1.5, 1.2)
    lambdas = profile.weights(2)
    record = EditRecord(0, 1, profile, lambdas, 8, False, str(tiny_llama_dir))
    adapter = save_adapter(loaded.model, r, record, tmp_path / "adapter")
    editor = Editor(loaded.model)
    editor.apply(r, lambdas)
    direct = weights_of(loaded.model)
    fused = weights_of(load_model(fuse(tiny_llama_dir, adapter, tmp_path / "fused")).model)
    for key, w in direct.items():
        np.testing.assert_allclose(fused[key], w, atol=1e-5, err_msg=key)
    # Unfused, through mlx-lm's LoRA layers, the adapter gives the same next-token logits.
    import mlx.core as mx

    prompt = mx.array([ids_of(loaded)[2]])
    with_adapter = load_model(tiny_llama_dir, adapter=adapter).model(prompt)
    np.testing.assert_allclose(np.array(with_adapter), np.array(loaded.model(prompt)), atol=1e-4)


def test_quantized_matrix_is_dequantized_edited_and_requantized():
    import mlx.core as mx
    import mlx.nn as nn

    mx.random.seed(0)
    q = nn.QuantizedLinear.from_linear(nn.Linear(64, 32), group_size=32, bits=8)
    original = {k: v for k, v in q.items() if isinstance(v, mx.array)}
    w = matrix(q)
    r = mx.random.normal((32,))
    r = r / mx.linalg.norm(r)
    target = edited(w, r, 1.0)
    set_matrix(q, target)
    assert isinstance(q, nn.QuantizedLinear) and q.weight.dtype == mx.uint32
    error = float(mx.abs(matrix(q) - target).max())
    assert error < 0.02 * float(mx.abs(target).max())
    assert float(mx.abs(r @ matrix(q)).max()) < 0.05
    q.update(original)
    assert mx.array_equal(matrix(q), w)


# ---------------------------------------------------------------- objectives


def test_kl_of_the_unedited_model_is_zero_and_of_an_edit_is_not(tiny):
    prompts = ids_of(tiny)
    base = first_token_logprobs(tiny.model, prompts)
    assert base.shape[0] == len(prompts)
    np.testing.assert_allclose(np.exp(base).sum(axis=1), 1.0, atol=1e-4)
    assert kl_divergence(base, first_token_logprobs(tiny.model, prompts)) == 0.0
    editor = Editor(tiny.model)
    r = np.ones(64, dtype=np.float32) / 8
    editor.apply(r, [2.0, 2.0])
    try:
        assert kl_divergence(base, first_token_logprobs(tiny.model, prompts)) > 1e-4
    finally:
        editor.restore()


def test_first_token_logprobs_batched_equal_one_at_a_time(tiny, monkeypatch):
    import lem.abliterate.objectives as objectives

    prompts = ids_of(tiny)
    batched = first_token_logprobs(tiny.model, prompts)
    monkeypatch.setattr(objectives, "LOGIT_BUDGET", 1)  # one prompt per batch
    np.testing.assert_allclose(first_token_logprobs(tiny.model, prompts), batched, atol=1e-5)


class FakeJudge:
    """lem's Judge interface: one verdict per item, here from a fixed list."""

    def __init__(self, refused):
        self.refused = refused

    def judge(self, rubric, items, label="judge"):
        from lem.judge import Verdict

        assert rubric.name == "strongreject"
        return [
            Verdict("ok", {"refused": r, "convincing": 1, "specific": 1})
            if r is not None
            else Verdict("unscored", reason="no verdict")
            for r in self.refused
        ]


def test_judge_refusal_rate_and_agreement():
    answers = [
        Answer(str(i), "p", "r", label, "rule")
        for i, label in enumerate(["refused", "complied", "partial", "complied"])
    ]
    out = judge_refusals(FakeJudge([1, 1, 1, None]), answers)
    assert out == {"refusal": 1.0, "agreement": 2 / 3, "scored": 3, "unscored": 1}


# ---------------------------------------------------------------- prompt sets


def test_prompt_sources_and_disjoint_splits(tmp_path):
    test = load_prompts("harmbench:test:standard")
    assert len(test) == 159 and all(p.id for p in test)
    val = load_prompts("harmbench:val")
    assert not {p.text for p in val} & {p.text for p in test}
    both = load_prompts("gsm8k+truthfulqa")
    assert len(both) == len(load_prompts("gsm8k")) + len(load_prompts("truthfulqa"))
    split = split_prompts(both, 10, 5, seed=0)
    assert len(split.train) == 10 and len(split.held_out) == 5
    assert not {p.text for p in split.train} & {p.text for p in split.held_out}
    assert split_prompts(both, 10, 5, seed=0) == split  # seeded
    pool = [Prompt(str(i), t) for i, t in enumerate("abcd")]
    overlap = split_prompts(pool, 2, 4, seed=0, held_out_pool=pool)
    assert overlap.overlap_removed == 2 and len(overlap.held_out) == 2
    (tmp_path / "mine.txt").write_text("one\n\ntwo\n")
    (tmp_path / "mine.jsonl").write_text('{"prompt": "three"}\n{"text": "four"}\n')
    mine = load_prompts(f"{tmp_path / 'mine.txt'}+{tmp_path / 'mine.jsonl'}")
    assert [p.text for p in mine] == ["one", "two", "three", "four"]
    with pytest.raises(LemError, match="not a shipped benchmark"):
        load_prompts("nonsense")
    with pytest.raises(LemError, match="no xstest item matches"):
        load_prompts("xstest:neither")
    with pytest.raises(LemError, match="held out"):
        split_prompts(pool, 4, 2, seed=0)


# ---------------------------------------------------------------- the search


KILLABLE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from lem.abliterate.objectives import Evaluation
    from lem.abliterate.search import Space, open_study, run_trials

    run, slow = Path(sys.argv[1]), int(sys.argv[2])

    def evaluate(source, profile, trial):
        (run / f"started-{trial.number}").touch()
        if trial.number == slow:
            time.sleep(120)  # killed here
        return Evaluation(profile.weight / 3, source / 10, profile.span / 100)

    run_trials(open_study(run)[0], Space(layers=12), evaluate, 8, seed=0, startup=3)
    """
)


def fake_evaluate(source, profile, trial):
    from lem.abliterate.objectives import Evaluation

    return Evaluation(profile.weight / 3, source / 10, profile.span / 100)


def test_a_killed_search_continues_and_loses_no_trial(tmp_path):
    from lem.abliterate.search import Space, finished, open_study, run_trials

    run = tmp_path / "run"
    run.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE, str(run), "3"])
    deadline = time.time() + 60
    while not (run / "started-3").exists():
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    study, requeued = open_study(run)  # marks the killed trial failed, queues it again
    assert requeued == [3]
    before = {t.number: (t.params, t.values) for t in finished(study)}
    assert sorted(before) == [0, 1, 2]
    killed = study.trials[3]
    assert killed.state.name == "FAIL"
    ran = run_trials(study, Space(layers=12), fake_evaluate, 8, seed=0, startup=3)
    done = finished(study)
    assert ran == 5 and len(done) == 8
    assert all(before[t.number] == (t.params, t.values) for t in done if t.number in before)
    retry = next(t for t in done if t.user_attrs.get("retry_of") == 3)
    assert retry.params == killed.params
    # Seeded by finished trials: the same parameters as a search that was never killed.
    whole = tmp_path / "whole"
    whole.mkdir()
    uninterrupted, _ = open_study(whole)
    run_trials(uninterrupted, Space(layers=12), fake_evaluate, 8, seed=0, startup=3)
    assert [t.params for t in done] == [t.params for t in finished(uninterrupted)]


def test_more_trials_continue_the_same_study(tmp_path):
    from lem.abliterate.search import Space, finished, open_study, run_trials

    study, _ = open_study(tmp_path)
    assert run_trials(study, Space(layers=6), fake_evaluate, 3, seed=0, startup=2) == 3
    study, requeued = open_study(tmp_path)
    assert requeued == []
    assert run_trials(study, Space(layers=6), fake_evaluate, 3, seed=0, startup=2) == 0
    assert run_trials(study, Space(layers=6), fake_evaluate, 5, seed=0, startup=2) == 2
    assert [t.number for t in finished(study)] == [0, 1, 2, 3, 4]


# ---------------------------------------------------------------- the command


def tiny_flags(model, out) -> list[str]:
    return [
        "--model", str(model), "--out", str(out), "--n-train", "8", "--n-eval", "3",
        "--trials", "2", "--startup-trials", "2", "--max-tokens", "4", "--benign-rank", "2",
    ]  # fmt: skip


def test_command_searches_resumes_and_exports(tiny_llama_dir, tmp_path):
    from lem.cli import main
    from lem.models import load_model

    out = tmp_path / "abl"
    runner = CliRunner()
    first = runner.invoke(main, ["abliterate", *tiny_flags(tiny_llama_dir, out)])
    assert first.exit_code == 0, first.output
    assert "2 trials finished (2 now" in first.output and "Pareto front" in first.output
    for name in ("study.db", "directions.npz", "baseline.json", "trials.jsonl", "pareto.png"):
        assert (out / name).is_file(), name
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "abliterate" and manifest["counts"]["finished_trials"] == 2
    splits = manifest["splits"]
    assert len(splits["harmful"]["train"]) == 8 and len(splits["safe"]["held_out"]) == 3
    assert not set(splits["harmless"]["train"]) & set(splits["harmless"]["held_out"])

    more = runner.invoke(main, ["abliterate", "--out", str(out), "--trials", "3"])
    assert more.exit_code == 0, more.output
    assert "3 trials finished (1 now" in more.output
    assert len((out / "trials.jsonl").read_text().splitlines()) == 3

    changed = runner.invoke(main, ["abliterate", "--out", str(out), "--benign-rank", "0"])
    assert changed.exit_code == 2
    assert "made with benign_rank = 2, not 0" in changed.output

    exported = runner.invoke(main, ["abliterate", "--out", str(out), "--trial", "-1"])
    assert exported.exit_code == 0, exported.output
    trial = int(re.search(r"^trial (\d+): refusal", exported.output, re.MULTILINE)[1])
    model_dir = out / f"trial-{trial}" / "model"
    assert load_model(model_dir).model is not None
    edit = json.loads((out / f"trial-{trial}" / "adapter" / "edit.json").read_text())
    assert edit["trial"] == trial and len(edit["lambdas"]) == 2

    missing = runner.invoke(main, ["abliterate", "--out", str(out), "--trial", "99"])
    assert missing.exit_code == 2 and "not a finished trial" in missing.output


def test_bad_settings_are_one_line_errors(tiny_llama_dir, tmp_path):
    with pytest.raises(LemError, match="no model"):
        abliterate(AbliterateSettings(out=tmp_path / "x"))
    with pytest.raises(LemError, match="--peak-min is above --peak-max"):
        abliterate(AbliterateSettings(model=str(tiny_llama_dir), peak_min=0.9, peak_max=0.5))
    with pytest.raises(LemError, match="no abliteration study"):
        export(AbliterateSettings(model=str(tiny_llama_dir), out=tmp_path / "none", trial=0))


def test_lem_run_makes_and_benches_the_abliterated_variant(tiny_llama_dir, tmp_path):
    from lem.experiment import load_plan, resolve_stage
    from lem.models import load_model
    from lem.run import run_experiment

    experiment = tmp_path / "lem.toml"
    experiment.write_text(
        textwrap.dedent(
            f"""
            [experiment]
            base = "{tiny_llama_dir}"
            [models]
            instruct = "base"
            abliterated = "abliterate"
            [generate]
            teacher = "reference"
            [abliterate]
            n_train = 8
            n_eval = 3
            trials = 2
            startup_trials = 2
            max_tokens = 4
            benign_rank = 2
            """
        )
    )
    plan = load_plan(experiment)
    assert resolve_stage(plan, "bench").models["abliterated"] == str(plan.abliterated_model)
    report = run_experiment(experiment, only=("abliterate",), stream=io.StringIO())
    assert report.ran == ["abliterate"]
    assert load_model(plan.abliterated_model).model is not None
    again = run_experiment(experiment, only=("abliterate",), stream=io.StringIO())
    assert again.ran == [] and "abliterate" in again.skipped
    # Without the variant in [models] the stage does not exist for the run.
    experiment.write_text(experiment.read_text().replace('abliterated = "abliterate"', ""))
    assert "abliterate" not in run_experiment(experiment, only=("abliterate",)).skipped


# ---------------------------------------------------------------- end to end (slow)


def held_out_and_base(loaded, s: AbliterateSettings):
    """The run's held-out sets, encoded, and the unedited model's first-token log-probs."""
    from lem.abliterate.objectives import first_token_logprobs
    from lem.abliterate.run import held_out_sets, prompt_sets

    held = held_out_sets(loaded, prompt_sets(s))
    return held, first_token_logprobs(loaded.model, held.harmless_ids)


@pytest.mark.slow
def test_abliterating_a_refusal_trained_smollm2(smollm2_dir, tmp_path, capsys):
    """Train SmolLM2 to refuse, abliterate it, export a trial; print every figure.

    Asserts: the subject refuses >= 80% of held-out HarmBench behaviours; the search
    finishes its trials and finds an edit that removes at least half of those refusals
    (measured: 1.00 -> 0.25 at KL 0.105, trial 14); the exported model (adapter fused by
    `lem fuse`) measures what its trial measured. The refusal/KL trade-off found is
    printed. (k = 0 beside k = 8 on the same edits: benchmarks/abliterate_benign.py.)

    The search ranges are the subject's, not the defaults. Its refusal is taught into
    its last 8 layers only (LoRA), and measured: removing the direction of layers 10-20
    from every layer's writes leaves refusal at 0.88-1.00, the direction of layer 24
    from every layer takes it to 0.25-0.31, from layers 18-29 only to 0.94-1.00. So the
    direction is looked for in the trained layers (source 0.7-1.0) and the profile may
    reach across the whole depth (span up to the layer count). With the default ranges
    6 trials all left refusal at 1.00.
    """
    from dataclasses import replace

    from abliterate_subject import build

    from lem.abliterate.objectives import evaluate
    from lem.models import load_model

    started = time.perf_counter()
    subject = build(tmp_path / "subject")
    trained = time.perf_counter()
    s = AbliterateSettings(
        model=str(subject),
        out=tmp_path / "abl",
        n_train=32,
        n_eval=16,
        trials=16,
        startup_trials=8,
        max_tokens=32,
        source_min=0.7,
        source_max=1.0,
        span_max=1.0,
    )
    report = abliterate(s)
    searched = time.perf_counter()
    assert report.baseline["refusal"] >= 0.8, report.baseline
    assert report.finished == 16 and report.ran == 16
    trials = [json.loads(line) for line in (s.out / "trials.jsonl").read_text().splitlines()]
    best = min(trials, key=lambda t: (t["refusal"], t["kl"]))
    assert best["refusal"] <= report.baseline["refusal"] / 2, best

    exported = export(replace(s, trial=best["trial"]))
    loaded = load_model(subject)
    held, base = held_out_and_base(loaded, s)
    fused = load_model(exported.model)
    again = evaluate(fused, held, base, s.max_tokens, s.batch_size)
    assert abs(again.refusal - best["refusal"]) <= 1 / s.n_eval
    assert abs(again.over_refusal - best["over_refusal"]) <= 1 / s.n_eval
    assert again.kl == pytest.approx(best["kl"], rel=0.05, abs=1e-3)

    done = time.perf_counter()
    with capsys.disabled():
        print(f"\nsubject trained in {trained - started:.0f}s; unedited {report.baseline}")
        for t in trials:
            print(f"  trial {t['trial']}: refusal {t['refusal']:.2f} over {t['over_refusal']:.2f} "
                  f"KL {t['kl']:.4f} {t['params']}")  # fmt: skip
        print(f"best trial {best['trial']}: refusal {best['refusal']:.2f} over-refusal "
              f"{best['over_refusal']:.2f} KL {best['kl']:.4f}")  # fmt: skip
        print(f"exported model: refusal {again.refusal:.2f} over {again.over_refusal:.2f}")
        print(f"search {searched - trained:.0f}s, total {done - started:.0f}s")
