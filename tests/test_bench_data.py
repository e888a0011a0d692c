"""Benchmark data: file layouts (ours, the hub's, the LEM reference's), ids, subsets, errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lem.bench import BENCHMARKS, data, get_benchmark, item_id
from lem.errors import LemError

FIXTURES = Path(__file__).parent / "fixtures" / "bench"


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def gsm8k_rows(n):
    return [
        {"question": f"Sam has {i} apples and buys 2 more. How many?", "answer": f"#### {i + 2}"}
        for i in range(n)
    ]


def test_registry_names_and_unknown_benchmark():
    assert list(BENCHMARKS) == [
        "gsm8k",
        "truthfulqa_mc",
        "truthfulqa",
        "toxigen_cls",
        "toxigen",
        "xstest",
        "harmbench",
        "strongreject",
        "do_not_answer",
        "ethics",
    ]
    with pytest.raises(LemError, match="unknown benchmark 'gsm8'; known: gsm8k, truthfulqa_mc"):
        get_benchmark("gsm8")
    for bench in BENCHMARKS.values():
        if bench.is_judged() or bench.name == "gsm8k":
            # A judge reads the whole answer: above the reference's caps (512 / 256), which
            # cut 40-88% of its answers (with --full-answers for refusal-scored ones).
            assert (bench.full_max_tokens or bench.max_tokens) >= 768, bench.name
        # Every headline metric says which direction is better, or that none is.
        assert bench.headline and all(h.label for h in bench.headline)


@pytest.mark.parametrize(
    "name,file,expected",
    [
        ("gsm8k", "gsm8k.jsonl", {"answer": "27"}),
        ("gsm8k", "gsm8k_reference.jsonl", {"answer": "20"}),
        ("truthfulqa", "truthfulqa.jsonl", {"category": "Misconceptions"}),
        ("do_not_answer", "do_not_answer.jsonl", {"risk_area": "Malicious Uses"}),
        ("toxigen", "toxigen.jsonl", {"target_group": "rural people", "toxicity_label": 1}),
        ("toxigen", "toxigen_annotated.jsonl", {"target_group": "immigrants", "toxicity_label": 1}),
        ("ethics", "ethics.jsonl", {"domain": "privacy", "tension": ["consent", "protection"]}),
    ],
)
def test_fixture_files_load_with_normalised_fields(name, file, expected):
    bench = get_benchmark(name)
    items = bench.load(FIXTURES / file)
    assert len(items) == 3
    first = items[0]
    assert expected.items() <= first.items()
    assert set(first) - {"id"} <= set(bench.fields)
    optional = {"tension", "kind", "expect", "expected"}  # ethics rows may omit them
    assert {f for f in bench.fields if f not in optional} <= set(first)
    assert bench.load(FIXTURES / file) == items  # stable
    assert len({i["id"] for i in items}) == 3
    assert all(bench.prompt(i).strip() for i in items)


def test_ids_are_the_rows_own_or_a_hash_of_the_question():
    dna = get_benchmark("do_not_answer").load(FIXTURES / "do_not_answer.jsonl")
    assert [i["id"] for i in dna] == ["0", "1", "2"]
    gsm = get_benchmark("gsm8k").load(FIXTURES / "gsm8k.jsonl")
    assert gsm[0]["id"] == item_id("gsm8k", gsm[0]["question"])
    assert gsm[0]["id"].startswith("gsm8k-") and len(gsm[0]["id"]) == len("gsm8k-") + 12


def test_same_question_same_id_in_hub_and_reference_layouts(tmp_path):
    q = "A farmer has 17 sheep and buys 8 more. Then 5 sheep wander off. How many are left?"
    hub = write_jsonl(tmp_path / "hub.jsonl", [{"question": q, "answer": "17+8-5=20\n#### 20"}])
    ref = write_jsonl(tmp_path / "ref.jsonl", [{"question": q, "correct_answer": "20"}])
    bench = get_benchmark("gsm8k")
    assert bench.load(hub) == bench.load(ref)


def test_repeated_text_without_ids_keeps_every_row(tmp_path):
    rows = [{"question": "Same?", "answer": "#### 1"}] * 2
    items = get_benchmark("gsm8k").load(write_jsonl(tmp_path / "d.jsonl", rows))
    assert items[1]["id"] == items[0]["id"] + "-2"


def test_toxigen_hub_label_rule_is_strictly_above_5_5():
    items = get_benchmark("toxigen").load(FIXTURES / "toxigen_annotated.jsonl")
    # 4.2 + 3.7 = 7.9 toxic; 1.0 + 1.3 not; 2.8 + 2.7 = 5.5 exactly: not toxic.
    assert [i["toxicity_label"] for i in items] == [1, 0, 0]
    assert items[0]["prompt"].startswith("people with accents")


def test_truthfulqa_csv_in_its_own_layout():
    items = get_benchmark("truthfulqa").load(FIXTURES / "truthfulqa.csv")
    assert items[0]["best_answer"] == "No, goldfish can remember things for months"
    assert items[0]["correct_answers"] == [
        "No",
        "Goldfish remember things for months",
        "Goldfish can be trained",
    ]
    assert items[0]["incorrect_answers"] == ["Yes, goldfish forget everything after three seconds"]


def test_parquet_gives_the_same_items_as_jsonl(tmp_path):
    import pandas as pd

    rows = [json.loads(line) for line in (FIXTURES / "truthfulqa.jsonl").read_text().splitlines()]
    pd.DataFrame(rows).to_parquet(tmp_path / "t.parquet")
    bench = get_benchmark("truthfulqa")
    assert bench.load(tmp_path / "t.parquet") == bench.load(FIXTURES / "truthfulqa.jsonl")


@pytest.mark.parametrize(
    "name,content,message",
    [
        (
            "a.jsonl",
            '{"question": "Q?", "answer": "#### 1"}\n{"question": "Q2?"}\n',
            r"a\.jsonl:2: missing field answer or correct_answer; gsm8k rows need question and",
        ),
        (
            "b.jsonl",
            '{"question": "Q?", "answer": "#### 1"}\n{"question": "Q2?", \n',
            r"b\.jsonl:2: not valid JSON",
        ),
        ("c.jsonl", "\n\n", r"c\.jsonl: no gsm8k items in it"),
        (
            "d.jsonl",
            '{"question": "", "answer": "#### 1"}\n',
            r"d\.jsonl:1: field question must be",
        ),
        ("e.jsonl", '{"question": "Q?", "answer": "many"}\n', r"e\.jsonl:1: answer 'many' has no"),
        (
            "f.jsonl",
            '{"id": 1, "question": "Q?", "answer": "1"}\n{"id": 1, "question": "R?", '
            '"answer": "2"}\n',
            r"f\.jsonl:2: duplicate id '1' \(first at .*f\.jsonl:1\)",
        ),
        ("g.csv", "question,answer\nQ?,1\nR?,2,extra\n", r"g\.csv:3: more cells than header"),
        ("h.csv", "question,correct\nQ?,1\n", r"h\.csv:2: missing field answer or correct_answer"),
        ("i.txt", "Q?\n", r"i\.txt: unknown data file type \.txt; use \.jsonl, \.csv, \.parquet"),
        ("j.parquet", "not parquet", r"j\.parquet: not a readable Parquet file"),
        ("k.jsonl", "[1, 2]\n", r"k\.jsonl:1: expected a JSON object"),
    ],
)
def test_bad_data_files_give_one_line_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(LemError, match=message) as e:
        get_benchmark("gsm8k").load(path)
    assert "\n" not in str(e.value)


def test_bad_fields_of_other_benchmarks(tmp_path):
    tox = write_jsonl(
        tmp_path / "t.jsonl", [{"prompt": "x", "target_group": "y", "toxicity_label": 3}]
    )
    with pytest.raises(LemError, match=r"t\.jsonl:1: toxicity_label must be 0 or 1, got 3"):
        get_benchmark("toxigen").load(tox)
    tqa = write_jsonl(
        tmp_path / "q.jsonl",
        [
            {
                "question": "x",
                "best_answer": "y",
                "category": "z",
                "correct_answers": "[1, 2",
                "incorrect_answers": [],
            }
        ],
    )
    with pytest.raises(LemError, match=r"q\.jsonl:1: field correct_answers looks like a JSON list"):
        get_benchmark("truthfulqa").load(tqa)
    with pytest.raises(LemError, match=r"missing\.jsonl: data file not found"):
        get_benchmark("ethics").load(tmp_path / "missing.jsonl")


def test_seeded_subsets(tmp_path):
    path = write_jsonl(tmp_path / "g.jsonl", gsm8k_rows(40))
    bench = get_benchmark("gsm8k")
    everything = bench.load(path)
    a = bench.load(path, limit=10, seed=0)
    assert len(a) == 10
    assert [i["id"] for i in a] == [i["id"] for i in bench.load(path, limit=10, seed=0)]
    assert {i["id"] for i in a} != {i["id"] for i in bench.load(path, limit=10, seed=1)}
    assert a != everything[:10]  # not the first N
    order = [i["id"] for i in everything]
    assert [order.index(i["id"]) for i in a] == sorted(order.index(i["id"]) for i in a)
    assert {i["id"] for i in bench.load(path, limit=5, seed=0)} < {i["id"] for i in a}
    # The subset depends on ids, not on row order.
    shuffled = write_jsonl(tmp_path / "s.jsonl", list(reversed(gsm8k_rows(40))))
    assert {i["id"] for i in bench.load(shuffled, limit=10, seed=0)} == {i["id"] for i in a}
    assert bench.load(path, limit=100, seed=3) == everything
    with pytest.raises(LemError, match="--limit must be at least 1"):
        bench.load(path, limit=0)


def test_selection_records_source_and_hash():
    sel = data.load_items(get_benchmark("gsm8k"), FIXTURES / "gsm8k.jsonl", limit=2, seed=0)
    assert sel.total == 3 and len(sel.items) == 2
    assert sel.source.endswith("gsm8k.jsonl") and len(sel.source_sha256) == 64


def test_gated_hub_dataset_asks_for_a_token(monkeypatch):
    monkeypatch.setattr(data, "_hub_token", lambda: None)
    with pytest.raises(LemError, match="toxigen/toxigen-data is gated: .* set HF_TOKEN, or pass"):
        get_benchmark("toxigen").load("hub")


def test_ethics_defaults_to_the_shipped_evaluation_prompts():
    from lem.seeds import default_seeds_path, load_seeds

    shipped = default_seeds_path("eval")
    if not shipped.is_file():
        pytest.skip("the shipped evaluation prompts are not in this checkout yet")
    items = get_benchmark("ethics").load()
    assert [i["id"] for i in items] == [s.id for s in load_seeds(shipped)]


def test_offline_hub_is_a_one_line_error_with_exit_code_2(tmp_path, tiny_llama_dir):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "lem",
            "bench",
            "-b",
            "do_not_answer",
            "-m",
            f"t={tiny_llama_dir}",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "do_not_answer: could not load LibrAI/do-not-answer [train]" in last
    assert "the hub is not reachable and it is not cached" in last
    assert "pass --data FILE" in last
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr  # no retries printed
    assert not (tmp_path / "out").exists()


def test_pinned_subsets_are_what_lem_bench_selects():
    root = Path(__file__).parent.parent / "benchmarks" / "subsets"
    pinned = sorted(root.glob("*.json"))
    assert pinned, "benchmarks/subsets/ holds no pinned subset"
    checked = 0
    for path in pinned:
        record = json.loads(path.read_text())
        bench = get_benchmark(record["benchmark"])
        if bench.shipped is None:
            continue  # drawn from the hub, which tests do not reach
        selection = data.load_items(bench, None, record["limit"], record["seed"])
        hint = f"{path.name} is stale: re-pin with python benchmarks/pin.py {bench.name}"
        assert selection.source_sha256 == record["source_sha256"], hint
        assert [i["id"] for i in selection.items] == record["ids"], hint
        assert len(record["ids"]) == record["limit"]
        checked += 1
    assert checked


def test_shipped_benchmark_files_are_the_pinned_bytes():
    """Every vendored file (data, licenses, notices) has the SHA-256 SHA256SUMS pins, and
    nothing in the folder is left unpinned."""
    import hashlib
    from importlib import resources

    folder = Path(str(resources.files("lem") / "data" / "benchmarks"))
    pinned = {}
    for line in (folder / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        pinned[name] = digest
    present = {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.name not in ("README.md", "SHA256SUMS")
    }
    assert present == set(pinned)
    for name, digest in pinned.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
