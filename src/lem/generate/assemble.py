"""From raw answers to training data: the gates, the split files and the manifest."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lem.clients import public_url
from lem.config import to_dict
from lem.generate.gates import Gates
from lem.generate.plan import PlanItem
from lem.generate.prompts import TEMPLATE_VERSION, VOICES
from lem.store import Manifest, sha256_file
from lem.store import write_jsonl as _write_jsonl


@dataclass
class Assembly:
    train: list[dict]
    valid: list[dict]
    rejected: list[dict]
    counts: dict
    failures: list[dict]


def assemble(plan: list[PlanItem], state: dict[str, dict], settings, axiom_names) -> Assembly:
    """Apply the gates in plan order (so which duplicate survives is stable) and split."""
    gates = Gates(settings, axiom_names)
    kept: dict[str, list[dict]] = {"train": [], "valid": []}
    rejected, failures = [], []
    for item in plan:
        record = state.get(item.id)
        gate, detail, text = gates.check(record)
        if gate is None:
            kept[item.split].append(_example(item, text))
            continue
        if gate == "failed":
            failures.append({"id": item.id, "error": detail})
        rejected.append(
            {"id": item.id, "seed_id": item.seed_id, "gate": gate, "detail": detail, "text": text}
        )
    counts = {
        "planned": len(plan),
        "kept": len(kept["train"]) + len(kept["valid"]),
        "train": len(kept["train"]),
        "valid": len(kept["valid"]),
        "train_seeds": len({e["seed_id"] for e in kept["train"]}),
        "valid_seeds": len({e["seed_id"] for e in kept["valid"]}),
        "dropped": dict(gates.dropped),
        "length_regenerations": sum(state[i.id].get("round", 0) for i in plan if i.id in state),
        "kernel_ref_hits": dict(sorted(gates.ref_hits.items())),
        "kernel_ref_kept": gates.refs_kept,
        "formulaic_openings": dict(sorted(gates.openings.items())),
    }
    counts |= lengths(kept["train"] + kept["valid"])
    return Assembly(kept["train"], kept["valid"], rejected, counts, failures)


def lengths(examples: list[dict]) -> dict:
    """Answer lengths in words (min, median, max) and examples per seed kind."""
    words = sorted(len(e["messages"][-1]["content"].split()) for e in examples)
    kinds: dict[str, int] = {}
    for e in examples:
        kinds[e.get("kind") or "(none)"] = kinds.get(e.get("kind") or "(none)", 0) + 1
    if not words:
        return {"answer_words": None, "kinds": kinds}
    middle = words[len(words) // 2]
    return {"answer_words": {"min": words[0], "median": middle, "max": words[-1]}, "kinds": kinds}


def _example(item: PlanItem, text: str) -> dict:
    """The chat a student trains on: the conversation (every turn) and the answer, no kernel."""
    turns = [dict(m) for m in item.history or []]
    example = {
        "messages": [
            *turns,
            {"role": "user", "content": item.prompt},
            {"role": "assistant", "content": text},
        ],
        "id": item.id,
        "seed_id": item.seed_id,
    }
    if item.kind is not None:
        example["kind"] = item.kind
    if item.voice is not None:
        example["voice"] = item.voice
    return example


def write_outputs(out: Path, made: Assembly) -> tuple[dict[str, Path], list[str]]:
    files, warnings = {}, []
    for name, rows in (("train", made.train), ("valid", made.valid)):
        path = out / f"{name}.jsonl"
        if rows:
            _write_jsonl(path, rows)
            files[name] = path
        else:
            # mlx-lm fails on an empty split file; without one it trains without validation.
            path.unlink(missing_ok=True)
            warnings.append(f"no {name} examples survived the gates; {path.name} not written")
    files["rejected"] = out / "rejected.jsonl"
    _write_jsonl(files["rejected"], made.rejected)
    return files, warnings


def write_manifest(
    settings, kernel, seeds_path, files, made, teacher: dict, inputs: dict, warnings
) -> Path:
    """OUT/manifest.json: inputs' hashes, the teacher's identity, counts, gates, warnings."""
    out = Path(settings.out)
    recorded = to_dict(settings) | {
        "kernel": str(kernel.directory),
        "seeds": str(seeds_path),
        "teacher_base_url": public_url(settings.teacher_base_url),
    }
    extra = {
        "teacher": teacher,
        "template_version": TEMPLATE_VERSION,
        "failures": made.failures,
        "warnings": warnings,
    }
    if settings.voices:
        extra["voices"] = VOICES
    return Manifest(
        stage="generate",
        inputs={
            "kernel.md": kernel.text_sha256,
            "axioms.json": kernel.axioms_sha256,
            "seeds": sha256_file(seeds_path),
            **inputs,
        },
        settings=recorded,
        outputs={str(p.relative_to(out)): "" for p in files.values()},
        counts=made.counts,
        extra=extra,
    ).write(out)
