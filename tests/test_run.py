"""`lem run` and `lem init`: the whole pipeline from an experiment file, skipping what is done."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from servers import FakeOpenAI, Reply

from lem.cli import main
from lem.errors import LemError
from lem.experiment import init_experiment, load_plan, shipped_experiment
from lem.run import run_experiment

# The quick profile, smaller still: a handful of seeds, a few steps, two benchmarks. The
# teacher is a local OpenAI-compatible server with fixed answers (a 135M teacher's answers
# are too erratic for the gates to leave a predictable number); training, benchmarking and
# the judge (a real mlx_lm.server) use SmolLM2.
TINY = """
[experiment]
name = "tiny"
out = "run"
base = "{base}"
[models]
instruct = "base"
[generate]
teacher = "openai/teacher"
teacher_base_url = "{teacher_url}"
n_examples = 10
max_tokens = 128
temperature = 0.0
valid_fraction = 0.3
[train]
iters = 2
batch_size = 1
learning_rate = 1e-4
num_layers = 4
max_seq_length = 768
truncate = true
steps_per_report = 1
steps_per_eval = 2
val_batches = 1
save_every = 2
[bench]
benchmarks = ["gsm8k", "ethics"]
limit = 2
max_tokens = {bench_tokens}
data = {{ gsm8k = "samples:gsm8k" }}
[score]
judge = "serve:base"
concurrency = 2
reasks = 0
[report]
baseline = "instruct"
"""


def test_shipped_profiles_parse():
    for name in ("quick", "default"):
        assert shipped_experiment(name).is_file()
    plan = load_plan(None, quick=True)
    assert plan.base == "pypi:smollm2-135m-instruct"  # resolved when a stage needs it
    assert plan.models == {"instruct": "pypi:smollm2-135m-instruct"}


def test_init_writes_and_refuses_to_overwrite(tmp_path):
    path = init_experiment(tmp_path)
    assert "[experiment]" in path.read_text()
    with pytest.raises(LemError, match="already exists"):
        init_experiment(tmp_path)
    assert init_experiment(tmp_path, quick=True, force=True).read_text() == (
        shipped_experiment("quick").read_text()
    )


def test_bad_experiment_files_are_one_line_errors(tmp_path, tiny_llama_dir):
    f = tmp_path / "lem.toml"
    runner = CliRunner()
    cases = {
        "[experiment]\nbase = 'x'\n[trian]\niters = 1\n": "unknown table(s) trian",
        "[models]\ni = 'base'\n": "set base",
        f"[experiment]\nbase = '{tiny_llama_dir}'\n[models]\nlek = 'base'\n": "tuned model's name",
        f"[experiment]\nbase = '{tiny_llama_dir}'\n[train]\niter = 3\n": "unknown setting 'iter'",
        "[experiment\n": "invalid TOML",
    }
    for text, fragment in cases.items():
        f.write_text(text)
        result = runner.invoke(main, ["run", str(f)])
        assert result.exit_code == 2, (text, result.output)
        assert fragment in result.output and len(result.output.strip().splitlines()) == 1
    result = runner.invoke(main, ["run", str(tmp_path / "none.toml")])
    assert result.exit_code == 2 and "not found" in result.output


def teacher_answer(received) -> Reply:
    return Reply(
        text=f"On '{received.user[:40]}': here is what I would weigh, the options you have, "
        "and the one I would pick, with the reason for it."
    )


@pytest.mark.slow
def test_quick_pipeline_end_to_end_then_skips_then_reruns_downstream(tmp_path, smollm2_dir):
    with FakeOpenAI(teacher_answer) as teacher:
        run_tiny_pipeline(tmp_path, smollm2_dir, teacher.base_url)


def run_tiny_pipeline(tmp_path, smollm2_dir, teacher_url):
    f = tmp_path / "lem.toml"
    f.write_text(TINY.format(base=smollm2_dir, bench_tokens=48, teacher_url=teacher_url))

    first = run_experiment(f)
    assert first.ran == ["generate", "train", "bench", "score", "report"]
    out = tmp_path / "run"
    for name in (
        "lem.resolved.toml",
        "stages.json",
        "report/report.md",
        "report/report.json",
        "report/report.png",
        "training/manifest.json",
        "train/manifest.json",
        "results/manifest.json",
        "scores/manifest.json",
        "report/manifest.json",
    ):
        assert (out / name).is_file(), name
    rows = json.loads((out / "report/report.json").read_text())
    models = {r["model"] for r in rows}
    assert models == {"instruct", "lek"}
    gsm8k = [r for r in rows if r["benchmark"] == "gsm8k" and r["metric"] == "accuracy"]
    assert {r["n"] for r in gsm8k} == {2}
    assert all("p_value" in r for r in rows if r["model"] == "lek")
    assert "| Model" in (out / "report/report.md").read_text()
    assert CliRunner().invoke(main, ["verify", str(out)]).exit_code == 0

    # Nothing changed: nothing runs.
    second = run_experiment(f)
    assert second.ran == [] and second.skipped == first.ran

    # A bench setting changes: bench and what reads it re-run; generate and train do not.
    f.write_text(TINY.format(base=smollm2_dir, bench_tokens=40, teacher_url=teacher_url))
    third = run_experiment(f)
    assert third.skipped == ["generate", "train"]
    assert third.ran == ["bench", "score", "report"]
    results = [json.loads(line) for line in (out / "results/gsm8k_lek.jsonl").open()]
    assert {r["tokens"] <= 40 for r in results} == {True}
