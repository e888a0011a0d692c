"""The `reference` teacher: answers the lem team wrote, in its own words, for every training
seed, as the kernel asks a good assistant to answer (package data, keyed by seed id).

They are what users without an API key, the tests and `lem run --quick` train on. They
were written against one version of the kernel; the folder's `manifest.json` records
the kernel's hashes (as inputs) and the answers' hash (as output), and a run whose kernel
differs is refused (the answers would teach another kernel than the one in use) instead
of silently used. The answers' hash is part of the teacher's identity in every generate
manifest, and `lem verify` re-checks the file against its manifest. After editing the
answers, re-record the manifest: `python -m lem.generate.reference`.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from lem.errors import LemError
from lem.generate.plan import PlanItem
from lem.store import Manifest, iter_jsonl, read_manifest, sha256_file

REFERENCE = "reference"  # the teacher spec
ANSWERS = "answers.jsonl"


@dataclass
class Reference:
    """The shipped answers and what they were written against."""

    answers: dict[str, str]  # seed id -> answer
    directory: Path
    answers_sha256: str
    kernel_sha256: str
    axioms_sha256: str

    def identity(self) -> dict:
        """The teacher's identity in manifests and stage fingerprints."""
        return {
            "spec": REFERENCE,
            "answers_sha256": self.answers_sha256,
            "written_against": {"kernel.md": self.kernel_sha256, "axioms.json": self.axioms_sha256},
        }


def reference_dir() -> Path:
    return Path(str(resources.files("lem") / "data" / "reference"))


def load_reference(directory: Path | None = None) -> Reference:
    """The reference answers (one per seed id, each non-empty) and their provenance."""
    directory = directory if directory is not None else reference_dir()
    path = directory / ANSWERS
    answers: dict[str, str] = {}
    for number, row in iter_jsonl(path):
        seed, answer = row.get("seed_id"), row.get("answer")
        if not isinstance(seed, str) or not isinstance(answer, str) or not answer.strip():
            raise LemError(f"{path}:{number}: expected seed_id and a non-empty answer")
        if seed in answers:
            raise LemError(f"{path}:{number}: a second answer for {seed}")
        answers[seed] = answer
    against = read_manifest(directory, "reference")["inputs"]
    return Reference(
        answers, directory, sha256_file(path), against["kernel.md"], against["axioms.json"]
    )


def record_manifest(directory: Path | None = None, kernel=None) -> Path:
    """Write the folder's manifest: the kernel the answers were written against (default:
    the shipped one), the answers' hash, and counts."""
    from lem.kernel import load_kernel

    directory = directory if directory is not None else reference_dir()
    kernel = kernel if kernel is not None else load_kernel()
    answers = [row for _, row in iter_jsonl(directory / ANSWERS)]
    words = sorted(len(r["answer"].split()) for r in answers)
    return Manifest(
        stage="reference",
        inputs={"kernel.md": kernel.text_sha256, "axioms.json": kernel.axioms_sha256},
        outputs={ANSWERS: ""},
        counts={"answers": len(answers), "words": {"min": words[0], "max": words[-1]}},
        extra={"written_against": str(kernel.directory.name)},
    ).write(directory)


def check_kernel(reference: Reference, kernel) -> None:
    """Refuse a kernel the answers were not written against: they would teach another one."""
    if (kernel.text_sha256, kernel.axioms_sha256) != (
        reference.kernel_sha256,
        reference.axioms_sha256,
    ):
        raise LemError(
            f"teacher reference: the shipped answers were written against another kernel "
            f"(kernel.md {reference.kernel_sha256[:12]}, axioms.json "
            f"{reference.axioms_sha256[:12]}) than {kernel.directory} (kernel.md "
            f"{kernel.text_sha256[:12]}, axioms.json {kernel.axioms_sha256[:12]}); use the "
            "shipped kernel, or a teacher model (--teacher gemini/<model>, mlx/<dir>, ...)"
        )


def reference_state(plan: list[PlanItem], reference: Reference) -> dict[str, dict]:
    """Each planned item's answer as a teacher work record; a seed with none has failed."""
    state = {}
    for item in plan:
        answer = reference.answers.get(item.seed_id)
        if answer is None:
            state[item.id] = {"error": f"no reference answer for seed {item.seed_id}"}
        else:
            state[item.id] = {"text": answer, "finish_reason": "stop", "status": "ok"}
            state[item.id] |= {"error": None, "round": 0}
    return state


if __name__ == "__main__":
    print(record_manifest())
