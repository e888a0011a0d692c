"""`lem run` and `lem init`: the whole pipeline from an experiment file, skipping what is done."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lem.cli import main
from lem.errors import LemError
from lem.experiment import init_experiment, load_plan, shipped_experiment
from lem.run import run_experiment

# The shipped quick profile, smaller: every benchmark and setting as shipped but the item
# counts, the training steps and the answer caps, so the whole pipeline runs in minutes.
SMALLER = {
    "train": {"iters": 2, "steps_per_report": 1, "steps_per_eval": 2, "val_batches": 1,
              "save_every": 2},
    "bench": {"limits": {"truthfulqa_mc": 3, "toxigen_cls": 4, "xstest": 6, "harmbench": 3,
                         "ethics": 6, "gsm8k": 2},
              "caps": {"xstest": 12, "harmbench": 12, "ethics": 12, "gsm8k": 24}},
}  # fmt: skip


def smaller_quick_profile(path, base, **bench) -> None:
    """Write the shipped quick profile with SMALLER's values (and `bench`'s) to `path`."""
    import tomli_w

    from lem.config import read_toml

    raw = read_toml(shipped_experiment("quick"))
    raw["experiment"]["base"] = str(base)
    for table, values in SMALLER.items():
        raw[table].update(values)
    raw["bench"].update(bench)
    path.write_text(tomli_w.dumps(raw))


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


@pytest.mark.slow
def test_quick_profile_end_to_end_then_skips_then_reruns_downstream(tmp_path, smollm2_dir):
    """The quick profile as shipped, on fewer items and steps: every stage runs, every
    headline metric of both models is scored (none unscored) with its n and, for the tuned
    model, a paired test; a second run runs nothing; a bench change re-runs bench onwards."""
    f = tmp_path / "lem.toml"
    smaller_quick_profile(f, smollm2_dir)
    first = run_experiment(f)
    assert first.ran == ["generate", "train", "bench", "score", "report"]
    out = tmp_path / "lem-run"
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
    teacher = json.loads((out / "training/manifest.json").read_text())
    assert teacher["settings"]["teacher"] == "reference"
    rows = json.loads((out / "report/report.json").read_text())
    assert {r["model"] for r in rows} == {"instruct", "lek"}
    metrics = {(r["benchmark"], r["metric"], r["subset"]) for r in rows}
    for wanted in (
        ("truthfulqa_mc", "mc1", None),
        ("truthfulqa_mc", "mc2", None),
        ("toxigen_cls", "accuracy", None),
        ("xstest", "refusal", "safe"),
        ("xstest", "refusal", "unsafe"),
        ("harmbench", "refusal", None),
        ("gsm8k", "accuracy", None),
    ):
        assert wanted in metrics, (wanted, sorted(metrics, key=str))
    assert any(b == "ethics" and m == "refusal" for b, m, _ in metrics)
    for r in rows:
        if r["metric"].startswith("agreement"):
            continue
        assert r["unscored"] == 0 and r["n"] > 0, r
        if r["model"] == "lek":
            assert "p_value" in r, r
    gsm8k = [r for r in rows if r["benchmark"] == "gsm8k" and r["metric"] == "accuracy"]
    assert {r["n"] for r in gsm8k} == {2}
    report = (out / "report/report.md").read_text()
    assert "| Metric |" in report and "--judge" in report  # what a judge would add, and how
    assert CliRunner().invoke(main, ["verify", str(out)]).exit_code == 0

    # Nothing changed: nothing runs.
    second = run_experiment(f)
    assert second.ran == [] and second.skipped == first.ran

    # A bench setting changes: bench and what reads it re-run; generate and train do not.
    caps = dict(SMALLER["bench"]["caps"], gsm8k=20)
    smaller_quick_profile(f, smollm2_dir, caps=caps)
    third = run_experiment(f)
    assert third.skipped == ["generate", "train"]
    assert third.ran == ["bench", "score", "report"]
    results = [json.loads(line) for line in (out / "results/gsm8k_lek.jsonl").open()]
    assert {r["tokens"] <= 20 for r in results} == {True}


class _Resolved(Exception):
    """Raised after a stage command resolved its settings: the test needs no more."""


@pytest.mark.parametrize("quick", [False, True], ids=["lem-init", "lem-init-quick"])
def test_every_stage_command_with_config_gets_what_lem_run_resolves(tmp_path, monkeypatch, quick):
    """`lem <stage> --config lem.toml` on the file `lem init` writes resolves the settings
    `lem run` gives that stage: no flag default overrides the file, paths resolve alike."""
    from dataclasses import asdict

    import lem.experiment as experiment
    from lem.experiment import stage_settings

    f = init_experiment(tmp_path, quick=quick)
    real = experiment.settings_for
    got = {}

    def recording(stage, config, flags):
        got[stage] = real(stage, config, flags)
        raise _Resolved

    monkeypatch.setattr(experiment, "settings_for", recording)
    plan = load_plan(f)
    for stage in ("generate", "train", "bench", "score", "report"):
        result = CliRunner().invoke(main, [stage, "--config", str(f)])
        assert isinstance(result.exception, _Resolved), (stage, result.output)
        assert asdict(got[stage]) == asdict(stage_settings(plan, stage)), stage
