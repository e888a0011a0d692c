"""lem train on a tiny random llama (learning, resume, stages, bad input); SmolLM2 is slow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lem.errors import LemError
from lem.store import sha256_file, verify_manifest
from lem.train import TrainSettings, train
from lem.train_data import BatchPlan, Example, epoch_batches, validation_batches

FIXTURES = Path(__file__).parent / "fixtures" / "chat"
ANSWERS = [
    "The capital of France is Paris.",
    "Two plus two is four.",
    "I can't help with that, but here is what I can do instead.",
    "Respect the person's choices and explain your reasoning.",
]


def chat(i: int, answer: str | None = None) -> dict:
    return {
        "id": f"ex-{i}",
        "messages": [
            {"role": "user", "content": f"Question {i}: what is {i} times 3?"},
            {"role": "assistant", "content": answer or ANSWERS[i % len(ANSWERS)]},
        ],
    }


def write_data(directory: Path, n_train: int = 8, n_valid: int = 4) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", n_train), ("valid", n_valid)):
        lines = "".join(json.dumps(chat(i)) + "\n" for i in range(n))
        (directory / f"{name}.jsonl").write_text(lines)
    return directory


@pytest.fixture
def data(tmp_path):
    return write_data(tmp_path / "data")


def settings(model: Path, data: Path, out: Path, **kw) -> TrainSettings:
    """Small, fast settings for the tiny llama (2 layers: train them all)."""
    base = dict(
        model=str(model),
        data=data,
        out=out,
        iters=6,
        learning_rate=1e-3,
        num_layers=-1,
        steps_per_report=1,
        steps_per_eval=3,
        save_every=2,
        fuse=False,
    )
    return TrainSettings(**(base | kw))


def read_metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def adapter_weights(directory: Path) -> dict:
    import mlx.core as mx

    return mx.load(str(directory / "adapters.safetensors"))


# ---- training -----------------------------------------------------------------------


def test_lora_steps_lower_training_loss_and_write_outputs(tiny_llama_dir, data, tmp_path):
    out = tmp_path / "run"
    report = train(settings(tiny_llama_dir, data, out, iters=12, keep_checkpoints=0))
    assert report.final_train_loss < report.first_train_loss * 0.7
    assert report.best_val_loss < read_metrics(out)[0]["val_loss"]  # step-0 validation
    assert report.steps == 12 and report.trained_tokens > 0
    for name in ("adapter", "adapter-best", "loss.png", "settings.json", "metrics.jsonl"):
        assert (out / name).exists(), name
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        f"step-{i:07d}" for i in (2, 4, 6, 8, 10, 12)
    ]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"]["train.jsonl"] == sha256_file(data / "train.jsonl")
    assert manifest["seed"] == 0 and manifest["report"]["steps"] == 12
    assert verify_manifest(out / "manifest.json") == []
    assert json.loads((out / "settings.json").read_text())["learning_rate"] == 1e-3
    best = json.loads((out / "adapter-best" / "best.json").read_text())
    assert best["step"] == report.best_step
    assert best["val_loss"] == pytest.approx(
        min(r["val_loss"] for r in read_metrics(out) if "val_loss" in r)
    )

    from lem.models import load_model  # the adapter loads through mlx-lm's load_adapters

    for name in ("adapter", "adapter-best", "checkpoints/step-0000012"):
        assert load_model(tiny_llama_dir, adapter=out / name).adapter == out / name


def test_prompt_masking_trains_only_the_answer(tiny_llama_dir, data, tmp_path):
    masked = train(settings(tiny_llama_dir, data, tmp_path / "a", iters=2))
    whole = train(settings(tiny_llama_dir, data, tmp_path / "b", iters=2, mask_prompt=False))
    assert 0 < masked.trained_tokens < whole.trained_tokens


def test_epochs_set_the_number_of_steps(tiny_llama_dir, data, tmp_path):
    report = train(settings(tiny_llama_dir, data, tmp_path / "run", epochs=2, iters=999))
    assert report.steps == 2 * 8 // 2


@pytest.mark.parametrize("kind", ["dora", "full"])
def test_dora_and_full_fine_tuning_run(kind, tiny_llama_dir, data, tmp_path):
    out = tmp_path / kind
    report = train(settings(tiny_llama_dir, data, out, iters=2, fine_tune_type=kind, fuse=True))
    names = set(adapter_weights(out / "adapter"))
    if kind == "dora":
        assert any(n.endswith(".m") for n in names)
    else:
        assert any(n.endswith("self_attn.q_proj.weight") for n in names)
    assert report.model == out / "model" and (out / "model" / "config.json").is_file()


def test_gradient_checkpointing_gives_the_same_training_and_is_undone(
    tiny_llama_dir, data, tmp_path
):
    from mlx_lm.models.llama import TransformerBlock

    original = TransformerBlock.__call__
    plain = train(settings(tiny_llama_dir, data, tmp_path / "a", iters=2))
    saving = train(settings(tiny_llama_dir, data, tmp_path / "b", iters=2, grad_checkpoint=True))
    assert saving.final_train_loss == pytest.approx(plain.final_train_loss, rel=1e-5)
    assert TransformerBlock.__call__ is original  # mlx-lm's class patch was reverted


def test_lora_alpha_sets_the_scale():
    from lem.train import adapter_config

    assert (
        adapter_config(TrainSettings(lora_rank=8, lora_alpha=16))["lora_parameters"]["scale"] == 2
    )
    assert adapter_config(TrainSettings())["lora_parameters"] == {
        "rank": 8,
        "scale": 20.0,
        "dropout": 0.0,
    }


def test_schedule_warms_up_then_decays(tiny_llama_dir, data, tmp_path):
    out = tmp_path / "run"
    train(settings(tiny_llama_dir, data, out, iters=8, warmup=3, lr_schedule="cosine"))
    rates = [r["learning_rate"] for r in read_metrics(out) if "learning_rate" in r]
    # mlx-lm's warmup starts at 0 and reaches the peak after `warmup` steps, then decays
    assert rates[:4] == pytest.approx([0.0, 1e-3 / 3, 2e-3 / 3, 1e-3], rel=1e-5)
    after = rates[3:]
    assert (
        all(b <= a * (1 + 1e-6) for a, b in zip(after[:-1], after[1:], strict=True))
        and after[-1] < 0.5e-3
    )


# ---- resume and stages --------------------------------------------------------------


class StopAt:
    """A TrainingCallback that kills the run (raises) when step `at` is reported."""

    def __init__(self, at: int):
        self.at = at

    def on_train_loss_report(self, info: dict) -> None:
        if info["iteration"] == self.at:
            raise KeyboardInterrupt(f"stopped at {self.at}")

    def on_val_loss_report(self, info: dict) -> None:
        pass


def test_resume_after_interruption_reaches_the_same_adapter(tiny_llama_dir, tmp_path):
    data = write_data(tmp_path / "data", n_train=7)  # 3 batches/epoch, one example left over
    kw = dict(iters=8, lora_dropout=0.2)  # dropout: the random stream must resume too
    whole = train(settings(tiny_llama_dir, data, tmp_path / "whole", **kw))
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        train(settings(tiny_llama_dir, data, cut, **kw), callback=StopAt(5))
    assert not (cut / "manifest.json").exists()  # the run did not finish
    resumed = train(settings(tiny_llama_dir, data, cut, **kw), resume=True)
    assert resumed.resumed_from == 4
    a, b = adapter_weights(tmp_path / "whole" / "adapter"), adapter_weights(cut / "adapter")
    assert set(a) == set(b)
    for name in a:
        np.testing.assert_allclose(np.array(a[name]), np.array(b[name]), rtol=1e-5, atol=1e-6)
    steps = [r["step"] for r in read_metrics(cut) if "train_loss" in r]
    assert steps == list(range(1, 9))  # records of the lost step 5 were dropped, not duplicated
    assert resumed.final_train_loss == pytest.approx(whole.final_train_loss, rel=1e-5)
    assert resumed.best_val_loss == pytest.approx(whole.best_val_loss, rel=1e-5)


KILL_AT_5 = """
import os, signal
import lem
from lem.config import resolve
from lem.train import TrainSettings, train

class Kill:
    def on_train_loss_report(self, info):
        if info["iteration"] == 5:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup of any kind

    def on_val_loss_report(self, info):
        pass

train(resolve(TrainSettings, {{}}, {flags!r}), callback=Kill())
"""


def test_hard_killed_run_resumes_through_the_cli(tiny_llama_dir, data, tmp_path):
    import subprocess
    import sys

    from lem.cli import main

    flags = dict(model=str(tiny_llama_dir), data=str(data), iters=8, learning_rate=1e-3)
    flags |= dict(num_layers=-1, steps_per_report=1, steps_per_eval=3, save_every=2)
    flags |= dict(lora_dropout=0.2, fuse=False)
    whole = train(TrainSettings(**(flags | {"data": data, "out": tmp_path / "whole"})))
    cut = tmp_path / "cut"
    code = KILL_AT_5.format(flags=flags | {"out": str(cut)})
    killed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr[-2000:]
    args = ["train", "--resume", "--out", str(cut), "--no-fuse", "--lora-dropout", "0.2"]
    for key in ("model", "data", "iters", "learning_rate", "num_layers", "steps_per_report"):
        args += [f"--{key.replace('_', '-')}", str(flags[key])]
    args += ["--steps-per-eval", "3", "--save-every", "2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "resumed from step 4" in result.output
    a, b = adapter_weights(whole.adapter), adapter_weights(cut / "adapter")
    for name in a:
        np.testing.assert_allclose(np.array(a[name]), np.array(b[name]), rtol=1e-5, atol=1e-6)


def test_resume_of_a_finished_run_does_no_training(tiny_llama_dir, data, tmp_path):
    out = tmp_path / "run"
    first = train(settings(tiny_llama_dir, data, out, iters=2))
    again = train(settings(tiny_llama_dir, data, out, iters=2), resume=True)
    assert again.resumed_from == 2 and again.final_train_loss == first.final_train_loss


def test_resume_refuses_changed_settings_or_data(tiny_llama_dir, data, tmp_path):
    out = tmp_path / "run"
    train(settings(tiny_llama_dir, data, out, iters=2))
    with pytest.raises(LemError, match="learning_rate changed"):
        train(settings(tiny_llama_dir, data, out, iters=2, learning_rate=2e-3), resume=True)
    with (data / "train.jsonl").open("a") as f:
        f.write(json.dumps(chat(99)) + "\n")
    with pytest.raises(LemError, match=r"train\.jsonl \(contents\) changed"):
        train(settings(tiny_llama_dir, data, out, iters=2), resume=True)


def test_existing_run_needs_resume_and_resume_needs_a_checkpoint(tiny_llama_dir, data, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(LemError, match="no checkpoint to resume from"):
        train(settings(tiny_llama_dir, data, out), resume=True)
    with pytest.raises(KeyboardInterrupt):  # killed before the first checkpoint (step 2)
        train(settings(tiny_llama_dir, data, out, iters=2), callback=StopAt(1))
    with pytest.raises(LemError, match="no checkpoint to resume from"):
        train(settings(tiny_llama_dir, data, out, iters=2), resume=True)
    train(settings(tiny_llama_dir, data, out, iters=2))  # nothing to keep: starts over
    with pytest.raises(LemError, match="already holds a training run"):
        train(settings(tiny_llama_dir, data, out, iters=2))


def test_stage_two_starts_from_stage_one_adapter(tiny_llama_dir, data, tmp_path):
    one = train(settings(tiny_llama_dir, data, tmp_path / "one", iters=6))
    two_out = tmp_path / "two"
    train(
        settings(
            tiny_llama_dir, data, two_out, iters=2, resume_adapter=tmp_path / "one" / "adapter"
        )
    )
    start = read_metrics(two_out)[0]
    assert start["step"] == 0 and start["val_loss"] == pytest.approx(one.final_val_loss, rel=1e-5)
    fresh = read_metrics(tmp_path / "one")[0]["val_loss"]
    assert abs(start["val_loss"] - fresh) > 0.1  # not the untrained starting point
    with pytest.raises(LemError, match="lora_parameters.rank"):
        train(
            settings(
                tiny_llama_dir,
                data,
                tmp_path / "bad",
                lora_rank=4,
                resume_adapter=tmp_path / "one" / "adapter",
            )
        )


# ---- bad input: one line, before any work -------------------------------------------


def bad(tiny_llama_dir, data, tmp_path, match, **kw):
    out = tmp_path / "never"
    with pytest.raises(LemError, match=match) as err:
        train(settings(kw.pop("model", tiny_llama_dir), data, out, **kw))
    assert "\n" not in str(err.value)
    assert not out.exists()  # nothing was started
    return str(err.value)


def test_missing_split_is_named(tiny_llama_dir, data, tmp_path):
    (data / "valid.jsonl").unlink()
    bad(tiny_llama_dir, data, tmp_path, r"valid\.jsonl: missing")


def test_malformed_line_names_file_and_line(tiny_llama_dir, data, tmp_path):
    with (data / "train.jsonl").open("a") as f:
        f.write('{"messages": [\n')
    bad(tiny_llama_dir, data, tmp_path, r"train\.jsonl:9: not valid JSON")


@pytest.mark.parametrize(
    "row, problem",
    [
        ({"text": "no messages"}, "non-empty list"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "last message must be the assistant"),
        ({"messages": [{"role": "bot", "content": "hi"}]}, "role 'bot'"),
        ({"messages": [{"role": "assistant", "content": ["x"]}]}, "string `content`"),
    ],
)
def test_bad_chat_rows_are_named(row, problem, tiny_llama_dir, data, tmp_path):
    with (data / "valid.jsonl").open("a") as f:
        f.write(json.dumps(row) + "\n")
    bad(tiny_llama_dir, data, tmp_path, rf"valid\.jsonl:5: .*{problem}")


def test_too_few_examples_for_the_batch(tiny_llama_dir, data, tmp_path):
    bad(tiny_llama_dir, data, tmp_path, "4 example.*fewer than batch_size 5", batch_size=5)


def test_long_examples_are_counted_and_named(tiny_llama_dir, tmp_path):
    data = write_data(tmp_path / "data")
    with (data / "train.jsonl").open("a") as f:
        for i in (50, 51):
            f.write(json.dumps(chat(i, answer="Paris is the capital. " * 40)) + "\n")
    message = bad(tiny_llama_dir, data, tmp_path, "2 example", max_seq_length=64)
    assert "line 9 (id ex-50" in message and "line 10 (id ex-51" in message
    assert "--truncate" in message
    report = train(
        settings(tiny_llama_dir, data, tmp_path / "cut", max_seq_length=64, truncate=True, iters=1)
    )
    assert report.steps == 1


def test_missing_model_and_bad_options(tiny_llama_dir, data, tmp_path):
    bad(tiny_llama_dir, data, tmp_path, "no such directory", model=str(tmp_path / "nope"))
    wrong_type = "fine_tune_type must be one of lora, dora, full; got 'qlora'"
    bad(tiny_llama_dir, data, tmp_path, wrong_type, fine_tune_type="qlora")
    bad(tiny_llama_dir, data, tmp_path, "iters must be at least 1, got -5", iters=-5)
    bad(tiny_llama_dir, data, tmp_path, "only 2 layers", num_layers=16)


def test_cli_bad_input_exits_2_with_one_line(tiny_llama_dir, data, tmp_path):
    from lem.cli import main

    (data / "train.jsonl").write_text(json.dumps(chat(0)) + "\n")
    args = [
        "train",
        "--model",
        str(tiny_llama_dir),
        "--data",
        str(data),
        "--out",
        str(tmp_path / "o"),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "1 example(s), fewer than batch_size 2" in result.output
    assert len(result.output.strip().splitlines()) == 1
    config = tmp_path / "lem.toml"
    config.write_text("[train]\nbatch_size = 1\nlearning_rat = 0.1\n")
    result = CliRunner().invoke(main, args + ["--config", str(config)])
    assert result.exit_code == 2 and "unknown setting 'learning_rat'" in result.output


def test_cli_trains_with_config_and_flags(tiny_llama_dir, data, tmp_path):
    from lem.cli import main

    config = tmp_path / "lem.toml"
    config.write_text("[train]\niters = 3\nlearning_rate = 0.002\nnum_layers = -1\n")
    out = tmp_path / "o"
    args = ["train", "--config", str(config), "--model", str(tiny_llama_dir), "--data", str(data)]
    result = CliRunner().invoke(main, args + ["--out", str(out), "--iters", "2", "--no-fuse"])
    assert result.exit_code == 0, result.output
    assert "2 steps" in result.output and f"best adapter: {out / 'adapter-best'}" in result.output
    saved = json.loads((out / "settings.json").read_text())
    assert saved["iters"] == 2 and saved["learning_rate"] == 0.002 and saved["fuse"] is False
    assert not (out / "model").exists()


# ---- batching -----------------------------------------------------------------------


def test_every_epoch_sees_each_example_once_and_orders_differ():
    lengths = [5, 9, 3, 7, 7, 2, 8, 4]
    one, two = (epoch_batches(lengths, 2, seed=1, epoch=e) for e in (0, 1))
    for batches in (one, two):
        assert sorted(i for b in batches for i in b) == list(range(8))
    assert one != two
    assert epoch_batches(lengths, 2, seed=1, epoch=0) == one  # a pure function of (seed, epoch)


def test_left_over_examples_vary_between_epochs():
    lengths = list(range(9))  # 9 examples, batches of 2: one left out per epoch
    left_out = {
        next(iter(set(range(9)) - {i for b in epoch_batches(lengths, 2, 0, e) for i in b}))
        for e in range(12)
    }
    assert len(left_out) > 3  # not always the longest


def test_validation_uses_every_example_in_a_fixed_order():
    examples = [Example([1] * n, 0, i + 1, None) for i, n in enumerate([3, 1, 2, 4, 5])]
    groups = validation_batches(examples, 2, seed=0, limit=-1)
    assert sorted(i for g in groups for i in g) == list(range(5))  # the odd one too
    assert validation_batches(examples, 2, seed=0, limit=2) == groups[:2]


def test_batch_plan_crosses_epochs():
    examples = [Example([1] * n, 0, i + 1, None) for i, n in enumerate([3, 1, 2, 4])]
    plan = BatchPlan(examples, 2, seed=0)
    assert plan.per_epoch == 2
    assert [plan.indices(s) for s in (2, 3)] == epoch_batches([3, 1, 2, 4], 2, 0, 1)


# ---- the real model ---------------------------------------------------------------


@pytest.mark.slow
def test_smollm2_trains_fuses_and_generates(smollm2_dir, tmp_path):
    from lem.decode import encode_chat, generate_batch
    from lem.models import load_model

    out = tmp_path / "run"
    s = TrainSettings(
        model=str(smollm2_dir),
        data=FIXTURES,
        out=out,
        iters=4,
        batch_size=2,
        learning_rate=1e-4,
        steps_per_report=2,
        steps_per_eval=4,
        val_batches=2,
        save_every=4,
    )
    report = train(s)
    assert report.final_train_loss < report.first_train_loss
    fused = load_model(report.model)
    prompt = encode_chat(
        fused,
        [
            {
                "role": "user",
                "content": "A friend asks you to read their partner's messages. What do you say?",
            }
        ],
    )
    [answer] = generate_batch(fused, [prompt], max_tokens=24)
    assert answer.text.strip() and answer.tokens > 0
    assert verify_manifest(report.model / "manifest.json") == []
