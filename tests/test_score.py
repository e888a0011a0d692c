"""`lem score`: exact match, judged benchmarks through a local judge server, cache, secrets."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from servers import FakeGemini, FakeOpenAI, Received, Reply
from test_judge import nonce_of

from lem.bench.truthfulqa import TRUTHFULQA
from lem.cli import main
from lem.cli.options import named_values
from lem.errors import LemError
from lem.score import ScoreSettings, score
from lem.store import read_jsonl

FIX = Path(__file__).parent / "fixtures" / "score"
ITEMS = {"gsm8k": FIX / "items/gsm8k.jsonl", "truthfulqa": FIX / "items/truthfulqa.jsonl"}
ITEMS["do_not_answer"] = FIX / "items/do_not_answer.jsonl"
JUDGED = [FIX / "results/truthfulqa_base.jsonl", FIX / "results/do_not_answer_base.jsonl"]


def schema_judge(received: Received) -> str:
    """An honest judge: reads the requested fields from the schema it was sent."""
    body = received.json
    if "response_format" in body:
        props = body["response_format"]["json_schema"]["schema"]["properties"]
    else:
        props = body["generationConfig"]["responseSchema"]["properties"]
    answer = {"response_id": nonce_of(received)}
    for name, spec in props.items():
        if name != "response_id":
            answer[name] = int(spec["maximum"]) - 3  # 7 on a 1-10 scale, 2 for the 0-5 action
    return json.dumps(answer)


def lines_by(path: Path) -> dict[tuple[str, str], dict]:
    return {(r["id"], r["metric"]): r for r in read_jsonl(path)}


def settings(tmp_path: Path, results, data=None, **kw) -> ScoreSettings:
    data = {k or "": str(v) for k, v in (data or {}).items()}
    return ScoreSettings(
        results=list(results),
        data=data,
        out=tmp_path / "scores",
        cache=tmp_path / "verdicts.sqlite",
        **kw,
    )


def test_gsm8k_exact_match_records_each_rule(tmp_path):
    report = score(settings(tmp_path, [FIX / "results/gsm8k_base.jsonl"], {None: ITEMS["gsm8k"]}))
    lines = lines_by(tmp_path / "scores/gsm8k_base.jsonl")
    accuracy = {
        i: (lines[(i, "accuracy")]["value"], lines[(i, "accuracy")]["rule"])
        for i in "g1 g2 g3 g4".split()
    }
    assert accuracy == {
        "g1": (1, "hash"),
        "g2": (1, "boxed"),
        "g3": (1, "answer_is"),
        "g4": (0, "none"),
    }
    strict = [lines[(i, "accuracy_strict")]["value"] for i in ("g1", "g2", "g3", "g4")]
    assert strict == [1, 0, 0, 0]
    g4 = lines[("g4", "accuracy")]
    assert g4["status"] == "ok" and g4["reason"] == "no answer found" and g4["extracted"] is None
    g2 = lines[("g2", "accuracy")]
    assert (g2["extracted"], g2["gold"], g2["model"], g2["judge"]) == (
        "1500",
        "1500",
        "base",
        "exact-match",
    )
    assert g2["rubric_version"].startswith("gsm8k-exact@") and g2["kind"] == "binary"
    assert report.judge is None and report.files[0].counts["accuracy"] == {"ok": 4, "unscored": 0}
    manifest = json.loads((tmp_path / "scores/manifest.json").read_text())
    assert manifest["stage"] == "score" and "gsm8k_base.jsonl" in manifest["outputs"]


def test_reference_layout_results_are_scored_unchanged(tmp_path):
    results = FIX / "reference/gsm8k_LEK-Gemma3-1B.jsonl"
    before = hashlib.sha256(results.read_bytes()).hexdigest()
    score(settings(tmp_path, [results], {None: FIX / "reference/gsm8k_items.jsonl"}))
    assert hashlib.sha256(results.read_bytes()).hexdigest() == before
    lines = lines_by(tmp_path / "scores" / results.name)
    got = {i: lines[(i, "accuracy")]["value"] for i in ("g1", "g2", "g3", "g4")}
    assert got == {"g1": 1, "g2": 0, "g3": 1, "g4": 1}  # g2 answers 1200, gold 1500
    assert lines[("g1", "accuracy")]["model"] == "LEK-Gemma3-1B"


def test_judged_metrics_without_a_judge_are_skipped_with_a_note(tmp_path):
    report = score(settings(tmp_path, JUDGED[:1], {None: ITEMS["truthfulqa"]}))
    assert report.skipped == {"truthfulqa": ["truthfulness", "informativeness"]}
    assert report.judge is None and read_jsonl(tmp_path / "scores/truthfulqa_base.jsonl") == []
    manifest = json.loads((tmp_path / "scores/manifest.json").read_text())
    assert manifest["skipped_without_judge"] == report.skipped
    # Do Not Answer has a scorer that needs no judge: refusal is scored, the rubric skipped.
    report = score(settings(tmp_path, JUDGED[1:], {None: ITEMS["do_not_answer"]}))
    lines = read_jsonl(tmp_path / "scores/do_not_answer_base.jsonl")
    assert {r["metric"] for r in lines} == {"refusal"} and all(r["status"] == "ok" for r in lines)
    assert report.skipped == {"do_not_answer": ["safety", "nuance", "action"]}


def test_bad_inputs_are_one_line_errors(tmp_path):
    gsm = [FIX / "results/gsm8k_base.jsonl"]
    with pytest.raises(LemError, match="id 'g1' is not among the gsm8k items"):
        other = tmp_path / "items.jsonl"
        other.write_text(json.dumps({"id": "zz", "question": "q", "answer": "1"}) + "\n")
        score(settings(tmp_path, gsm, {None: other}))
    with pytest.raises(LemError, match="give one --data NAME=FILE per benchmark"):
        score(settings(tmp_path, [*gsm, JUDGED[0]], {None: ITEMS["gsm8k"]}, judge="openai/x"))
    with pytest.raises(LemError, match="unknown name 'gsm9k'"):
        named_values(["gsm9k=x.jsonl"], "--data", ["gsm8k"])
    assert named_values(["gsm8k=a.jsonl", "b.jsonl"], "--data", ["gsm8k"]) == {
        "gsm8k": "a.jsonl",
        "": "b.jsonl",
    }
    copy = tmp_path / "scores" / "gsm8k_base.jsonl"
    copy.parent.mkdir()
    shutil.copy(FIX / "results/gsm8k_base.jsonl", copy)
    with pytest.raises(LemError, match="would overwrite the results"):
        score(settings(tmp_path, [copy], {None: ITEMS["gsm8k"]}))
    mixed = tmp_path / "mixed.jsonl"
    rows = read_jsonl(FIX / "results/gsm8k_base.jsonl")[:1] + read_jsonl(JUDGED[0])[:1]
    mixed.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(LemError, match="mixes benchmarks"):
        score(settings(tmp_path, [mixed]))


def judged_run(tmp_path: Path, server, spec: str) -> object:
    data = {
        "truthfulqa": ITEMS["truthfulqa"],
        "do_not_answer": ITEMS["do_not_answer"],
        "gsm8k": ITEMS["gsm8k"],
    }
    results = [*JUDGED, FIX / "results/gsm8k_base.jsonl"]
    s = settings(
        tmp_path,
        results,
        data,
        judge=spec,
        judge_base_url=server.base_url,
        concurrency=4,
        max_retries=1,
    )
    return score(s)


def test_judged_scoring_then_a_free_rescore(tmp_path):
    with FakeOpenAI(schema_judge) as server:
        first = judged_run(tmp_path, server, "openai/judge")
        assert len(server.requests) == 5  # 3 TruthfulQA + 2 Do Not Answer
        tqa = lines_by(tmp_path / "scores/truthfulqa_base.jsonl")
        assert len(tqa) == 6 and {r["status"] for r in tqa.values()} == {"ok"}
        assert first.skipped == {}
        # The injections in t2 and t3 do not move an honest judge: its 7s are stored.
        assert (
            tqa[("t2", "truthfulness")]["value"] == 7
            and tqa[("t3", "informativeness")]["value"] == 7
        )
        line = tqa[("t1", "truthfulness")]
        assert line["judge"] == "openai/judge" and line["rubric_version"] == TRUTHFULQA.version
        assert json.loads(line["raw"])["truthfulness"] == 7 and line["cached"] is False
        dna = lines_by(tmp_path / "scores/do_not_answer_base.jsonl")
        assert dna[("d1", "action")]["value"] == 2 and dna[("d1", "action")]["kind"] == "category"
        assert first.usage.calls == 5 and first.cost_usd is None  # a local server: price unknown
        again = judged_run(tmp_path, server, "openai/judge")
        assert len(server.requests) == 5  # every verdict came from the cache
        assert again.usage.calls == 0 and again.usage.cached == 5
        assert all(r["cached"] for r in read_jsonl(tmp_path / "scores/truthfulqa_base.jsonl"))
        manifest = json.loads((tmp_path / "scores/manifest.json").read_text())
        assert manifest["judge_usage"]["cached"] == 5
        assert set(manifest["files"]) == {
            "truthfulqa_base.jsonl",
            "do_not_answer_base.jsonl",
            "gsm8k_base.jsonl",
        }


def test_failed_verdicts_are_unscored_lines_with_reasons(tmp_path):
    with FakeOpenAI(lambda r: "7/10, decent answer") as server:
        server.enqueue(Reply(status=404, message="no such model"))
        s = settings(
            tmp_path,
            JUDGED[:1],
            {None: ITEMS["truthfulqa"]},
            judge="openai/judge",
            judge_base_url=server.base_url,
            reasks=1,
            concurrency=1,
        )
        report = score(s)
    lines = read_jsonl(tmp_path / "scores/truthfulqa_base.jsonl")
    assert {r["status"] for r in lines} == {"unscored"} and {r["value"] for r in lines} == {None}
    reasons = {r["reason"].split(":")[0] for r in lines}
    assert reasons == {"judge error", "no valid verdict in 2 replies; last"}, reasons
    assert report.files[0].counts["truthfulness"] == {"ok": 0, "unscored": 3}


@pytest.mark.parametrize("provider", ["openai", "gemini"])
def test_the_api_key_is_never_written(tmp_path, monkeypatch, provider):
    marker = "sk-LEMTESTMARKER-" + hashlib.sha256(str(tmp_path).encode()).hexdigest()[:12]
    var = "OPENAI_API_KEY" if provider == "openai" else "GEMINI_API_KEY"
    monkeypatch.setenv(var, marker)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    server_cls = FakeOpenAI if provider == "openai" else FakeGemini
    with server_cls(schema_judge, api_key=marker) as server:
        # A server that echoes the key in an error must not get it into a file either.
        server.enqueue(Reply(status=403, message=f"key {marker} lacks access"))
        spec = "openai/judge" if provider == "openai" else "gemini/gemini-2.0-flash"
        judged_run(tmp_path, server, spec)
        assert server.requests[-1].headers  # the key did go to the server
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) >= 5
    for path in files:
        assert marker.encode() not in path.read_bytes(), path
    lines = [r for f in JUDGED for r in read_jsonl(tmp_path / "scores" / f.name)]
    redacted = {(r["benchmark"], r["id"]) for r in lines if "[redacted]" in (r["reason"] or "")}
    assert len(redacted) == 1  # the one verdict whose call the server refused


def test_cli_score_then_report(tmp_path):
    runner = CliRunner()
    out = tmp_path / "scores"
    args = [
        "score",
        str(FIX / "results/gsm8k_base.jsonl"),
        str(FIX / "reference/gsm8k_LEK-Gemma3-1B.jsonl"),
    ]
    result = runner.invoke(main, [*args, "--data", f"gsm8k={ITEMS['gsm8k']}", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "gsm8k_base.jsonl: gsm8k, 4 items: accuracy 4 ok, accuracy_strict 4 ok" in result.output
    result = runner.invoke(main, ["report", str(out), "--baseline", "base", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    lek = next(r for r in rows if r["model"] == "LEK-Gemma3-1B" and r["metric"] == "accuracy")
    assert (lek["mean"], lek["n"], lek["n_paired"]) == (0.75, 4, 4)
    # base right on g1-g3; LEK right on g1, g3, g4: one discordant pair each way.
    assert lek["delta"] == 0 and lek["p_value"] == 1.0
    noted = runner.invoke(
        main, ["score", str(JUDGED[0]), "--data", str(ITEMS["truthfulqa"]), "--out", str(out)]
    )
    assert noted.exit_code == 0, noted.output
    assert "truthfulqa: no --judge, so not scored: truthfulness, informativeness" in noted.output
