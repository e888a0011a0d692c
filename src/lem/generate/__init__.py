"""`lem generate`: seeds + kernel -> chat examples written by a teacher, gated, split by seed.

The teacher sees the axioms (with their worked examples) as system text and the kernel,
then the conversation; the example keeps only the conversation and the answer, so the
student learns to reason from the principles without ever seeing them. The teacher is a
model (`mlx/`, `gemini/`, `openai/`, `serve:`) or `reference`, the answers the lem team
wrote for the shipped seeds (`lem.generate.reference`).

A run plans its requests (`plan`), asks the teacher for what is missing (`ask`, resumable),
passes every answer through the quality gates (`gates`) and writes `train.jsonl`,
`valid.jsonl`, `rejected.jsonl` and `manifest.json` (`assemble`). A run in which no
answer survives is an error, and leaves the previous training files as they were.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lem.clients import ApiOptions, ChatClient, public_url
from lem.config import check, setting
from lem.errors import LemError
from lem.generate.ask import ask_teacher, load_work, work_key
from lem.generate.assemble import assemble, write_manifest, write_outputs
from lem.generate.gates import GATES
from lem.generate.plan import PlanItem, build_plan
from lem.generate.prompts import TEMPLATE_VERSION, VOICES, teacher_messages
from lem.generate.reference import REFERENCE
from lem.kernel import AXIOMS_FILE, KERNEL_TEXT
from lem.models import parse_model_ref
from lem.store import check_input_file, locked, sha256_json


@dataclass
class GenerateSettings(ApiOptions):
    """Everything `lem generate` takes; the `[generate]` table of lem.toml uses these names."""

    teacher: str | None = setting(
        None, "reference, mlx/<dir-or-hub-id>, serve:<dir>, gemini/<model> or openai/<model>"
    )
    teacher_base_url: str | None = setting(None, "Server URL for openai/ teachers")
    kernel: Path | None = setting(None, "Kernel directory", shown="shipped")
    seeds: Path | None = setting(None, "Seed JSONL", shown="shipped train seeds")
    out: Path = setting(Path("training"), "Output directory")
    n_examples: int | None = setting(None, "Teacher requests", min=1, shown="one per seed")
    valid_fraction: float = setting(
        0.1, "Share of seed ids held out for valid.jsonl", min=0, below=1
    )
    max_tokens: int = setting(512, "Token cap per answer", min=1)
    temperature: float = setting(0.7, "Teacher sampling temperature", min=0)
    seed: int = setting(0, "Sampling, seed-order and split seed", min=0)
    min_chars: int = setting(80, "Drop answers shorter than this", min=0)
    length_retries: int = setting(2, "Re-asks of a truncated answer, cap x2 each", min=0)
    batch_size: int = setting(32, "Requests handed to the teacher at a time", min=1)
    voices: bool = setting(False, "Vary the answer's voice")
    voice_seed: int = setting(0, "Seed for choosing voices", min=0)
    repetition_penalty: float | None = setting(
        None, "Local (mlx/) teachers only: mlx-lm's repetition penalty", gt=0
    )
    allow_kernel_refs: bool = setting(
        False, "Keep answers that mention the axioms/framework (still counted)"
    )
    max_same_opening: int = setting(
        3, "Keep at most this many answers opening with the same five words", min=1
    )


@dataclass
class GenerateReport:
    """What a run made: output paths, counts per gate, failed ids."""

    out: Path
    files: dict[str, Path]
    counts: dict
    failures: list[dict]
    manifest: Path
    work_file: Path | None
    warnings: list[str] = field(default_factory=list)


def check_settings(s: GenerateSettings) -> None:
    """Every field's rules (for settings built in Python), then what they cannot see: a
    teacher spec that names a teacher, and a kernel directory and seeds file that exist."""
    check(s, "generate")
    if not s.teacher:
        raise LemError("no teacher; pass --teacher (reference, mlx/<dir>, gemini/...)")
    if s.teacher != REFERENCE:
        parse_model_ref(s.teacher, s.teacher_base_url)
    if s.kernel is not None and not Path(s.kernel).is_dir():
        raise LemError(
            f"{s.kernel}: not a kernel directory (expected {KERNEL_TEXT} and {AXIOMS_FILE} "
            "inside it)"
        )
    if s.seeds is not None:
        check_input_file(s.seeds, "seeds file")


def teacher_identity(settings: GenerateSettings, kernel, client: ChatClient | None = None) -> dict:
    """Who answers: the reference answers' hashes, the teacher model's identity, or (for a
    client handed in by the caller) that client's spec."""
    if client is not None:
        base_url = public_url(settings.teacher_base_url)
        return {"spec": settings.teacher, "identity": client.spec, "base_url": base_url}
    if settings.teacher == REFERENCE:
        from lem.generate.reference import check_kernel, load_reference

        reference = load_reference()
        check_kernel(reference, kernel)
        return reference.identity()
    from lem.models import parse_model_ref

    ref = parse_model_ref(settings.teacher, settings.teacher_base_url)
    return {"spec": ref.spec, "identity": ref.identity(), "base_url": public_url(ref.base_url)}


def generate(settings: GenerateSettings, client: ChatClient | None = None) -> GenerateReport:
    """Ask the teacher for every planned example, gate the answers, write the split files.

    `client` replaces the one built from `settings.teacher` (tests, or a shared client);
    a client passed in is not closed.
    """
    from lem.kernel import load_kernel
    from lem.seeds import default_seeds_path, load_seeds

    check_settings(settings)
    kernel = load_kernel(settings.kernel)
    seeds_path = Path(settings.seeds) if settings.seeds is not None else default_seeds_path("train")
    seeds = load_seeds(seeds_path)
    plan = build_plan(seeds, settings)
    identity = teacher_identity(settings, kernel, client)
    out = Path(settings.out)
    with locked(out):
        if settings.teacher == REFERENCE:
            state, work, reused, calls = _from_reference(plan), None, 0, 0
        else:
            state, work, reused, calls = _from_teacher(plan, kernel, identity, settings, client)
        made = assemble(plan, state, settings, [a.name for a in kernel.axioms])
        made.counts |= {"seeds_in_file": len(seeds), "reused": reused, "teacher_calls": calls}
        if made.counts["kept"] == 0:
            raise LemError(_nothing_kept(made, out))
        files, warnings = write_outputs(out, made)
        inputs = {"teacher": sha256_json(identity)}
        teacher = identity | ({"work_file": str(work.relative_to(out))} if work else {})
        manifest = write_manifest(
            settings, kernel, seeds_path, files, made, teacher, inputs, warnings
        )
    return GenerateReport(out, files, made.counts, made.failures, manifest, work, warnings)


def _from_reference(plan: list[PlanItem]) -> dict[str, dict]:
    from lem.generate.reference import load_reference, reference_state

    if any(item.sample > 0 for item in plan):
        raise LemError(
            "teacher reference has one answer per seed: n_examples must not exceed "
            "the number of seeds"
        )
    return reference_state(plan, load_reference())


def _from_teacher(plan, kernel, identity: dict, settings, client) -> tuple:
    requests = {}
    for item in plan:
        messages = teacher_messages(
            kernel, item.prompt, item.voice, settings.max_tokens, item.history
        )
        requests[item.id] = (messages, sha256_json([messages, settings.seed + item.sample]))
    key = work_key(settings, kernel, identity["identity"])
    work = Path(settings.out) / "work" / f"teacher-{key[:16]}.jsonl"
    state = load_work(work, {i: sha for i, (_, sha) in requests.items()})
    reused = len(state)
    calls = ask_teacher(plan, requests, state, work, settings, client)
    return state, work, reused, calls


def _nothing_kept(made, out: Path) -> str:
    dropped = ", ".join(f"{g} {n}" for g, n in made.counts["dropped"].items() if n)
    first = f"; first error: {made.failures[0]['error']}" if made.failures else ""
    return (
        f"generate: no answer survived the gates ({dropped}){first}; the earlier files in "
        f"{out} are unchanged"
    )


__all__ = [
    "GATES",
    "GenerateReport",
    "GenerateSettings",
    "PlanItem",
    "TEMPLATE_VERSION",
    "VOICES",
    "build_plan",
    "generate",
    "teacher_messages",
]
