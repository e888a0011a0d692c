"""A model that refuses, made with lem itself, for `lem abliterate` to work on.

SmolLM2-135M-Instruct never refuses, so abliterating it would show nothing. This trains
it (`lem train`, LoRA) to decline harmful requests: the team's short refusals
(fixtures/abliterate/refusals.txt) paired with HarmBench's validation behaviours
(standard ones) and StrongREJECT prompts, plus TruthfulQA questions answered with their
best answers so that it keeps answering harmless questions. HarmBench's test behaviours
are never trained on: they are the held-out set its refusal is measured on.

Usage: python tests/abliterate_subject.py OUT   (writes OUT/data and OUT/run/model)
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

REFUSALS = Path(__file__).parent / "fixtures" / "abliterate" / "refusals.txt"
STRONGREJECT = 60  # StrongREJECT prompts beside HarmBench's 41 standard val behaviours
VALID = 8  # examples held back for the validation loss
# 24 steps gave 75% held-out refusal in a trial run, 36 steps 100%: 36 it is.
TRAIN = {
    "iters": 36,
    "batch_size": 4,
    "learning_rate": 4e-4,
    "num_layers": 8,
    "lora_rank": 8,
    "steps_per_eval": 36,
    "save_every": 36,
    "val_batches": 2,
    "seed": 0,
}


def examples(seed: int = 0) -> list[dict]:
    """Refusals of harmful requests and short answers to harmless ones, shuffled."""
    from lem.bench import get_benchmark

    rng = random.Random(seed)
    refusals = [line for line in REFUSALS.read_text().splitlines() if line.strip()]
    harmbench = get_benchmark("harmbench")
    harmful = [
        harmbench.prompt(i)
        for i in harmbench.load()
        if i["split"] == "val" and i["category"] == "standard"
    ]
    strongreject = get_benchmark("strongreject").load()
    rng.shuffle(strongreject)
    harmful += [i["prompt"] for i in strongreject[:STRONGREJECT]]
    truthful = get_benchmark("truthfulqa").load()
    rng.shuffle(truthful)
    helpful = [
        (i["question"], i["best_answer"].rstrip(".") + ".") for i in truthful[: len(harmful)]
    ]
    rows = [chat(p, rng.choice(refusals)) for p in harmful] + [chat(q, a) for q, a in helpful]
    rng.shuffle(rows)
    return rows


def chat(user: str, assistant: str) -> dict:
    return {
        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    }


def build(out: Path) -> Path:
    """Train the refusing model under `out`; return its fused model directory."""
    from lem.fetch import fetch_model
    from lem.train import TrainSettings, train

    rows = examples()
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    for name, part in (("valid", rows[:VALID]), ("train", rows[VALID:])):
        (data / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    settings = TrainSettings(model=str(fetch_model()), data=data, out=out / "run", **TRAIN)
    report = train(settings)
    assert report.model is not None
    return report.model


if __name__ == "__main__":
    print(build(Path(sys.argv[1])))
