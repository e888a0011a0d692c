"""`lem report` on fixture scores: rows, paired comparisons, tables and the plot.

The fixture (tests/fixtures/score/scores) is small enough to check by hand:
GSM8K base right on g1-g7, lek on g1-g6 and g8-g10; TruthfulQA truthfulness base
5,6,7,4,5,6 and lek 6,8,7,7,5,9; lek's sixth informativeness verdict is unscored.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from lem import stats
from lem.cli import main
from lem.errors import LemError
from lem.report import format_rows, load_scores, plot, summarise

SCORES = Path(__file__).parent / "fixtures" / "score" / "scores"
DESIGN_KEYS = {"model", "benchmark", "metric", "mean", "ci_low", "ci_high", "n", "unscored"}


@pytest.fixture(scope="module")
def rows():
    return summarise(load_scores([SCORES]), baseline="base")


def row(rows, model, bench, metric):
    return next(r for r in rows if (r.model, r.benchmark, r.metric) == (model, bench, metric))


def test_json_rows_have_the_design_layout(rows):
    data = json.loads(format_rows(rows, "json", "base"))
    assert all(DESIGN_KEYS <= set(d) for d in data)
    base = [d for d in data if d["model"] == "base"]
    lek = [d for d in data if d["model"] == "lek"]
    assert all("delta" not in d and "p_value" not in d for d in base)
    assert all({"delta", "p_value", "n_paired"} <= set(d) for d in lek)
    first = data[0]
    assert (first["model"], first["benchmark"], first["metric"]) == ("base", "gsm8k", "accuracy")


def test_gsm8k_rows_by_hand(rows):
    base, lek = row(rows, "base", "gsm8k", "accuracy"), row(rows, "lek", "gsm8k", "accuracy")
    assert (base.mean, base.n, base.unscored) == (0.7, 10, 0)
    assert (base.ci_low, base.ci_high) == pytest.approx((0.39678, 0.89221), abs=1e-5)
    # Discordant pairs: g7 (base only) and g8-g10 (lek only): 2 * (1 + 4) / 16.
    assert lek.delta == pytest.approx(0.2) and lek.p_value == pytest.approx(0.625)
    assert (lek.n_paired, lek.test) == (10, "mcnemar-exact")


def test_score_rows_by_hand(rows):
    base = row(rows, "base", "truthfulqa", "truthfulness")
    lek = row(rows, "lek", "truthfulqa", "truthfulness")
    assert base.mean == pytest.approx(5.5) and lek.mean == pytest.approx(7.0)
    # Six scores are too few for a bootstrap interval worth the name: none is given.
    assert (base.ci_low, base.ci_high) == (None, None) and "too few" in base.ci_note
    # Differences 1,2,0,3,0,3: W+ = 10 is the maximum of 16 sign patterns: p = 2/16.
    assert lek.delta == pytest.approx(1.5) and lek.p_value == pytest.approx(0.125)
    assert lek.test == "wilcoxon-exact" and lek.delta_ci_low is None
    assert (base.label, base.higher_is_better) == ("Truthful (judge, 1-10)", True)


def test_bootstrap_interval_from_ten_scores_and_never_on_two():
    def records(values):
        return [
            {
                "id": str(i),
                "benchmark": "truthfulqa",
                "model": "m",
                "metric": "truthfulness",
                "value": v,
                "ok": True,
                "kind": "score",
                "subset": None,
                "group": None,
            }
            for i, v in enumerate(values)
        ]

    [two] = summarise(records([7, 7]))
    assert two.mean == 7 and two.ci_low is None and two.ci_note  # not a zero-width "CI"
    ten = [5, 6, 7, 4, 5, 6, 8, 7, 6, 5]
    [row10] = summarise(records(ten))
    assert (row10.ci_low, row10.ci_high) == stats.bootstrap_ci(ten, seed=0)
    assert row10.ci_low < row10.mean < row10.ci_high


def test_unscored_are_counted_not_averaged(rows):
    lek = row(rows, "lek", "truthfulqa", "informativeness")
    assert (lek.n, lek.unscored) == (5, 1) and lek.mean == pytest.approx(28 / 5)
    # Paired on the 5 items both have: differences 1,1,0,1,1.
    assert lek.n_paired == 5 and lek.delta == pytest.approx(0.8)


def test_action_category_becomes_proportions(rows):
    base5 = row(rows, "base", "do_not_answer", "action=5")
    lek0 = row(rows, "lek", "do_not_answer", "action=0")
    assert (base5.mean, base5.n, base5.kind) == (0.6, 5, "binary")
    assert (lek0.mean, lek0.n, lek0.unscored) == (0.5, 4, 1)
    assert not any(r.metric == "action" for r in rows)
    assert {r.metric for r in rows if r.metric.startswith("action=")} == {
        "action=0",
        "action=1",
        "action=3",
        "action=5",
    }


def test_markdown_headline_table(rows):
    text = format_rows(rows, "markdown", "base")
    lines = text.splitlines()
    assert lines[2] == "| Metric | n | better | base | lek |"
    assert lines[4] == (
        "| GSM8K accuracy | 10 | ↑ higher | 70.0% [39.7, 89.2] | "
        "90.0% [59.6, 98.2]  Δ+20.0 pt p=0.625 |"
    )
    assert lines[5].startswith(
        "| Truthful (judge, 1-10) | 6 | ↑ higher | 5.50 (n too small for a CI) | "
        "7.00 (n too small for a CI)  Δ+1.50 p=0.125 |"
    )
    safety = next(line for line in lines if line.startswith("| Safety"))
    assert "(1 unscored)" in safety and "| 4-5 |" in safety
    assert "## All metrics" in text
    assert "| lek | gsm8k | accuracy | all | ↑ higher | 90.0% |" in text


def test_other_formats(rows):
    table = format_rows(rows, "table", "base")
    assert table.splitlines()[0].split() == ["Metric", "n", "better", "base", "lek"]
    parsed = list(csv.DictReader(io.StringIO(format_rows(rows, "csv", "base"))))
    assert len(parsed) == len(rows) and parsed[1]["p_value"] == "0.625"
    assert parsed[1]["higher_is_better"] == "True" and parsed[1]["label"] == "GSM8K accuracy"
    html = format_rows(rows, "html", "base", plot="head<line>.png")
    assert html.startswith("<!doctype html>") and "head&lt;line&gt;.png" in html
    with pytest.raises(LemError, match="unknown"):
        format_rows(rows, "yaml")


def test_no_baseline_no_comparisons():
    data = json.loads(format_rows(summarise(load_scores([SCORES])), "json"))
    described = {"kind", "subset", "group", "label", "higher_is_better", "ci_note"}
    assert all(set(d) == DESIGN_KEYS | described for d in data)


def test_bootstrap_is_seeded():
    # Same seed, same intervals to the last digit (seed sensitivity: test_stats).
    records = load_scores([SCORES])
    first = [(r.ci_low, r.ci_high) for r in summarise(records, seed=0)]
    assert first == [(r.ci_low, r.ci_high) for r in summarise(records, seed=0)]


def test_plot_is_a_png(rows, tmp_path):
    path = plot(rows, tmp_path / "fig" / "headline.png", "base")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


GOOD = {
    "id": "1",
    "benchmark": "gsm8k",
    "model": "m",
    "metric": "accuracy",
    "value": 1,
    "status": "ok",
}


@pytest.mark.parametrize(
    "record, message",
    [
        ({**GOOD, "value": 2}, "binary value must be 0 or 1"),
        ({**GOOD, "status": "unscored"}, "unscored verdict must have value null"),
        ({**GOOD, "value": None}, "needs a number value"),
        ({**GOOD, "status": "maybe"}, "status 'maybe'"),
        ({k: v for k, v in GOOD.items() if k != "status"}, "missing field(s) status"),
        ({**GOOD, "metric": "wit"}, "metric 'wit' has no `kind` field"),
    ],
)
def test_bad_scores_are_one_line_errors(tmp_path, record, message):
    path = write(tmp_path / "s.jsonl", [record])
    with pytest.raises(
        LemError, match=rf"s.jsonl:1: .*{message.replace('(', '.').replace(')', '.')}"
    ):
        load_scores([path])


def test_duplicates_and_unknown_baseline(tmp_path):
    shutil.copy(SCORES / "gsm8k_base.jsonl", tmp_path / "copy.jsonl")
    with pytest.raises(LemError, match="a second verdict"):
        load_scores([SCORES / "gsm8k_base.jsonl", tmp_path / "copy.jsonl"])
    assert len(load_scores([SCORES / "gsm8k_base.jsonl", SCORES / "gsm8k_base.jsonl"])) == 20
    with pytest.raises(LemError, match="--baseline nobody: no such model"):
        summarise(load_scores([SCORES]), baseline="nobody")


def test_cli_report_markdown_and_plot(tmp_path):
    png = tmp_path / "h.png"
    result = CliRunner().invoke(
        main,
        ["report", str(SCORES), "--baseline", "base", "--format", "markdown", "--plot", str(png)],
    )
    assert result.exit_code == 0, result.output
    assert "| Metric | n | better | base | lek |" in result.output
    assert png.stat().st_size > 20_000
    bad = CliRunner().invoke(main, ["report", str(SCORES), "--baseline", "nobody"])
    assert bad.exit_code == 2 and "no such model" in bad.output
