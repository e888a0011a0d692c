"""`lem bench` with the real SmolLM2-135M on two items of every benchmark (slow tier)."""

import io
import json
from pathlib import Path

import pytest

from lem.bench import BENCHMARKS
from lem.bench.runner import BenchSettings, run_bench

FIXTURES = Path(__file__).parent / "fixtures" / "bench"
HUB_ONLY = {"do_not_answer": "do_not_answer.jsonl"}  # every other benchmark ships its data
MAX_TOKENS = 16


@pytest.mark.slow
def test_every_benchmark_with_smollm2(smollm2, smollm2_dir, tmp_path):
    import mlx_lm

    from lem.decode import encode_chat

    names = list(BENCHMARKS)
    generated = [n for n in names if BENCHMARKS[n].answer == "generate"]
    settings = BenchSettings(
        benchmarks=names,
        models={"smol": str(smollm2_dir)},
        data={name: str(FIXTURES / file) for name, file in HUB_ONLY.items()},
        limit=2,
        out=tmp_path,
        max_tokens=MAX_TOKENS,
    )
    loads = []

    def shared(spec, adapter=None):  # the session's loaded model: no second load
        loads.append(spec)
        return smollm2

    reports = run_bench(settings, loader=shared, stream=io.StringIO())
    assert loads == [str(smollm2_dir)]
    assert [(r.benchmark, r.items, r.generated) for r in reports] == [(b, 2, 2) for b in names]
    rows = {}
    for name in names:
        rows[name] = [
            json.loads(x) for x in (tmp_path / f"{name}_smol.jsonl").read_text().split("\n") if x
        ]
        assert len(rows[name]) == 2
        if name not in generated:  # log-likelihood: one finite sum per choice, no answer
            for r in rows[name]:
                assert len(r["logprobs"]) == len(r["continuations"]) >= 2
                assert all(x < 0 for x in r["logprobs"])
            continue
        for r in rows[name]:
            assert r["response"].strip(), r
            assert r["finish_reason"] in ("stop", "length") and 0 < r["tokens"] <= MAX_TOKENS
            assert r["prompt_tokens"] > 10  # the chat template's system turn and markers
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["runs"]["gsm8k_smol"]["config"]["prompt_format"]["kind"] == "chat"
    # The batched answer is what one-at-a-time greedy decoding of the same chat gives.
    first = rows["truthfulqa"][0]
    ids = encode_chat(smollm2, [{"role": "user", "content": first["prompt"]}])
    alone = mlx_lm.generate(smollm2.model, smollm2.tokenizer, prompt=ids, max_tokens=MAX_TOKENS)
    assert alone == first["response"]
