"""The benign-subspace claim, measured: the same edits with the plain direction (k = 0)
and with the top-k harmless principal directions projected out (k = 8), side by side.

Usage: python benchmarks/abliterate_benign.py SUBJECT [--run RUN --trials N ...]

SUBJECT is a model directory, or a directory to build the refusal-trained SmolLM2 of the
slow abliterate test into (`tests/abliterate_subject.py`; about 3 minutes). Each edit is
measured the way `lem abliterate` measures a trial (32 prompts per side make the
direction; 16 held-out prompts per objective; answers cut at 32 tokens): refusal on
held-out HarmBench behaviours, over-refusal on XSTest's safe prompts, first-token KL on
harmless prompts. The edits are a fixed grid: the direction of one layer removed from
every layer's writes (lambda 1), from layers 18-29 only (lambda 1 and 1.5), and from
every layer at lambda 1.5; with --run, also the profiles of the given trials of a
`lem abliterate` run on the same subject (that run's settings must match the above).
Prints one row per edit and a Wilcoxon signed-rank test of k = 8 against k = 0 on KL
and on over-refusal across the edits. About 25 s per edit and k on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import lem  # noqa: F401  (the CPU fast path, before mlx)

ROOT = Path(__file__).resolve().parents[1]


def grid(layers: int) -> list[tuple[str, int, list[float]]]:
    """(name, source layer, lambdas) of the fixed edits."""
    edits = []
    for src in (10, 15, 20, 24, 28):
        edits.append((f"layer {src}, all layers x1", src, [1.0] * layers))
    for src in (22, 24, 26):
        for lo, w in ((18, 1.0), (18, 1.5), (0, 1.5)):
            where = "all layers" if lo == 0 else f"layers {lo}-{layers - 1}"
            lam = [w if i >= lo else 0.0 for i in range(layers)]
            edits.append((f"layer {src}, {where} x{w}", src, lam))
    return edits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("subject", type=Path)
    ap.add_argument("--run", type=Path, help="a lem abliterate run on the same subject")
    ap.add_argument("--trials", type=int, nargs="*", default=[], help="trials of --run")
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT / "tests"))
    from lem.abliterate import AbliterateSettings
    from lem.abliterate.direction import refusal_directions
    from lem.abliterate.edit import Editor, Profile
    from lem.abliterate.objectives import evaluate, first_token_logprobs
    from lem.abliterate.run import held_out_sets, prompt_sets, train_states
    from lem.models import load_model
    from lem.stats import wilcoxon_signed_rank

    model = args.subject
    if not (model / "config.json").is_file():
        from abliterate_subject import build

        model = build(args.subject)
    s = AbliterateSettings(model=str(model), n_train=32, n_eval=16, max_tokens=32)
    loaded = load_model(model)
    sets = prompt_sets(s)
    held = held_out_sets(loaded, sets)
    base = first_token_logprobs(loaded.model, held.harmless_ids)
    states = train_states(loaded, sets, s.batch_size)
    directions = {k: refusal_directions(*states, benign_rank=k) for k in (0, 8)}
    layers = len(loaded.model.layers)
    edits = grid(layers)
    if args.run:
        rows = (json.loads(line) for line in (args.run / "trials.jsonl").read_text().splitlines())
        by_number = {t["trial"]: t for t in rows}
        for n in args.trials:
            p = by_number[n]["params"]
            lam = Profile(p["peak"], p["span"], p["weight"]).weights(layers)
            edits.append((f"trial {n} of {args.run.name}", p["source_layer"], lam))

    unedited = evaluate(loaded, held, None, s.max_tokens, s.batch_size)
    print(f"unedited: refusal {unedited.refusal:.2f}  over-refusal {unedited.over_refusal:.2f}")
    print(f"{'edit':34} {'refusal k0/k8':>14} {'over k0/k8':>12} {'KL k0':>8} {'KL k8':>8}")
    editor = Editor(loaded.model)
    results = []
    for name, src, lam in edits:
        pair = []
        for k in (0, 8):
            editor.apply(directions[k].vectors[src], lam)
            pair.append(evaluate(loaded, held, base, s.max_tokens, s.batch_size))
            editor.restore()
        a, b = pair
        results.append(pair)
        print(
            f"{name:34} {a.refusal:6.2f}/{b.refusal:<6.2f} "
            f"{a.over_refusal:5.2f}/{b.over_refusal:<5.2f} {a.kl:8.4f} {b.kl:8.4f}",
            flush=True,
        )
    for what in ("kl", "over_refusal", "refusal"):
        k0 = [getattr(a, what) for a, _ in results]
        k8 = [getattr(b, what) for _, b in results]
        test = wilcoxon_signed_rank(k0, k8)
        lower = sum(y < x for x, y in zip(k0, k8, strict=True))
        higher = sum(y > x for x, y in zip(k0, k8, strict=True))
        print(
            f"{what}: k=8 lower in {lower}, higher in {higher} of {len(results)} edits; "
            f"Wilcoxon signed-rank p = {test.p_value:.3f} ({test.method}, n = {test.n})"
        )


if __name__ == "__main__":
    main()
