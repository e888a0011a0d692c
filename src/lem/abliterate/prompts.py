"""Prompt sets for abliteration: where harmful, harmless and safe prompts come from, and
the disjoint splits between the prompts that make the direction and those that judge it.

A source spec names one or more sources joined by `+`:

    harmbench[:val|test]       a shipped benchmark (any generate-mode one), optionally only
    harmbench:test:standard    the items whose split, label, category or type is each value
    xstest:safe, gsm8k, ...    given (HarmBench's copyright rows are always left out)
    lem:harmless               the team's 96 harmless requests, written in the imperative
                               form of HarmBench's behaviours (src/lem/data/abliterate/)
    hub:ORG/NAME[/CONFIG][@SPLIT][#COLUMN]
                               a hub dataset (split `train` and the first of prompt, text,
                               question, instruction, goal, behavior unless given)
    PATH                       a .txt file (one prompt a line) or .jsonl (`prompt` or `text`)
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

from lem.errors import LemError

HUB_PREFIX = "hub:"
SHIPPED_PREFIX = "lem:"
FILTER_FIELDS = ("split", "label", "category", "type")
COLUMNS = ("prompt", "text", "question", "instruction", "goal", "Goal", "behavior", "Behavior")


@dataclass(frozen=True)
class Prompt:
    """One prompt: a stable id (the benchmark's item id, or source + text hash) and its text."""

    id: str
    text: str


@dataclass(frozen=True)
class Split:
    """The prompts that make the direction (`train`) and those held out to judge the edit."""

    train: list[Prompt]
    held_out: list[Prompt]
    overlap_removed: int  # held-out candidates dropped because their text is in `train`

    def record(self) -> dict:
        """What the manifest keeps: counts and every prompt's id, per side."""
        return {
            "train": [p.id for p in self.train],
            "held_out": [p.id for p in self.held_out],
            "overlap_removed": self.overlap_removed,
        }


def text_id(source: str, text: str) -> str:
    return f"{source}-{hashlib.sha256(text.strip().encode()).hexdigest()[:12]}"


def load_prompts(spec: str) -> list[Prompt]:
    """Every prompt of a source spec (see the module docstring), duplicates by text removed."""
    prompts: list[Prompt] = []
    seen: set[str] = set()
    for part in (p.strip() for p in spec.split("+")):
        if not part:
            raise LemError(f"prompt source {spec!r}: empty part; write e.g. gsm8k+truthfulqa")
        for p in _load_one(part):
            if p.text.strip() and p.text not in seen:
                seen.add(p.text)
                prompts.append(p)
    if not prompts:
        raise LemError(f"prompt source {spec!r}: no prompts")
    return prompts


def _load_one(spec: str) -> list[Prompt]:
    if spec.startswith(HUB_PREFIX):
        return _hub(spec[len(HUB_PREFIX) :])
    if spec.startswith(SHIPPED_PREFIX):
        return _shipped(spec[len(SHIPPED_PREFIX) :])
    path = Path(spec).expanduser()
    if path.suffix in (".txt", ".jsonl") or path.exists():
        return _file(path)
    return _benchmark(spec)


def _benchmark(spec: str) -> list[Prompt]:
    from lem.bench import get_benchmark

    name, *values = spec.split(":")
    try:
        bench = get_benchmark(name)
    except LemError:
        raise LemError(
            f"prompt source {spec!r}: not a shipped benchmark, an existing .txt/.jsonl file "
            "or hub:ORG/NAME; e.g. harmbench:val, xstest:safe, gsm8k"
        ) from None
    if bench.answer != "generate" or bench.prompt is None:
        raise LemError(f"prompt source {spec!r}: {name} has no prompts to generate from")
    items = bench.load()
    for value in values:
        items = [i for i in items if value in (i.get(f) for f in FILTER_FIELDS)]
    if not items:
        raise LemError(f"prompt source {spec!r}: no {name} item matches {':'.join(values)}")
    prompts = []
    for item in items:
        text = bench.prompt(item)
        if not isinstance(text, str):
            raise LemError(f"prompt source {spec!r}: {name} asks with a chat, not one prompt")
        prompts.append(Prompt(str(item["id"]), text))
    return prompts


def _shipped(name: str) -> list[Prompt]:
    from importlib import resources

    folder = Path(str(resources.files("lem") / "data" / "abliterate"))
    path = folder / f"{name}.txt"
    if not path.is_file():
        known = ", ".join(f"lem:{p.stem}" for p in sorted(folder.glob("*.txt")))
        raise LemError(f"prompt source lem:{name}: not shipped; known: {known}")
    return [Prompt(text_id(f"lem-{name}", p.text), p.text) for p in _file(path)]


def _file(path: Path) -> list[Prompt]:
    from lem.store import iter_jsonl, read_text

    source = path.stem
    if path.suffix == ".jsonl":
        texts = []
        for number, row in iter_jsonl(path):
            text = next((row[c] for c in ("prompt", "text") if isinstance(row.get(c), str)), None)
            if text is None:
                raise LemError(f"{path}:{number}: no string field `prompt` or `text`")
            texts.append(text)
    else:
        texts = [line for line in read_text(path, "prompt file").splitlines() if line.strip()]
    return [Prompt(text_id(source, t), t) for t in texts]


def _hub(spec: str) -> list[Prompt]:
    """`ORG/NAME[/CONFIG][@SPLIT][#COLUMN]` through `datasets` (cached by it)."""
    rest, _, column = spec.partition("#")
    rest, _, split = rest.partition("@")
    parts = rest.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise LemError(f"prompt source hub:{spec}: write hub:ORG/NAME[/CONFIG][@SPLIT][#COLUMN]")
    dataset_id, config = "/".join(parts[:2]), (parts[2] if len(parts) == 3 else None)
    try:
        import datasets

        datasets.logging.set_verbosity_error()
        rows = datasets.load_dataset(dataset_id, config, split=split or "train")
    except Exception as e:  # network, auth and cache errors come in many types: report them
        reason = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise LemError(f"prompt source hub:{spec}: could not load it ({reason})") from None
    names = list(rows.column_names)
    column = column or next((c for c in COLUMNS if c in names), "")
    if column not in names:
        raise LemError(f"prompt source hub:{spec}: no column {column!r}; columns: {names}")
    return [Prompt(text_id(dataset_id, str(t)), str(t)) for t in rows[column]]


def split_prompts(
    pool: list[Prompt],
    n_train: int,
    n_held_out: int,
    seed: int,
    held_out_pool: list[Prompt] | None = None,
    what: str = "prompts",
) -> Split:
    """A seeded, disjoint split: `n_train` prompts from `pool` and `n_held_out` from
    `held_out_pool` (or from the rest of `pool`), no held-out text equal to a train text.
    `n_train` 0 gives an evaluation-only set."""
    order = list(pool)
    random.Random(seed).shuffle(order)
    train = order[:n_train]
    if held_out_pool is None:
        candidates = order[n_train:]
    else:
        candidates = list(held_out_pool)
        random.Random(seed + 1).shuffle(candidates)
    texts = {p.text.strip() for p in train}
    kept = [p for p in candidates if p.text.strip() not in texts]
    held_out = kept[:n_held_out]
    if (n_train and not train) or (n_held_out and not held_out):
        raise LemError(
            f"{what}: {len(train)} prompts to make the direction and {len(held_out)} held out; "
            "give a larger source or smaller counts"
        )
    return Split(train, held_out, len(candidates) - len(kept))
