"""The ethical kernel: its prose (`kernel.md`) and its axioms (`axioms.json`), validated.

A kernel directory holds both files. `axioms.json` is checked against the JSON Schema
shipped in the package (`lem/data/axioms.schema.json`) and for unique axiom ids; every
problem is reported as one line naming the file and the JSON path at fault, e.g.
`kernel/axioms.json: axioms[2]: 'statement' is a required property`.

The hashes recorded in a Kernel are SHA-256 of the files' bytes, so they match what
`lem.store.sha256_file` (and `lem verify`) compute for the same files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from lem.errors import LemError
from lem.store import decode_text, read_bytes, sha256_bytes

KERNEL_TEXT = "kernel.md"
AXIOMS_FILE = "axioms.json"
SCHEMA_FILE = "axioms.schema.json"


@dataclass
class Axiom:
    """One axiom: `examples` are dicts with `prompt`, `good_response_sketch`, optional `avoid`."""

    id: str
    name: str
    statement: str
    guidance: list[str]
    examples: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Kernel:
    """A loaded, validated kernel directory."""

    directory: Path
    text: str
    axioms: list[Axiom]
    text_sha256: str
    axioms_sha256: str
    name: str = ""
    version: str = ""
    resolution: list[str] = field(default_factory=list)
    hard_lines: list[str] = field(default_factory=list)

    @property
    def axiom_ids(self) -> list[str]:
        return [a.id for a in self.axioms]

    def system_text(self, examples: bool = True) -> str:
        """The axioms (with their worked examples unless told not) as a teacher's system text.

        It says "principles", not "axioms" or "kernel", and tells the teacher to answer the
        person directly: the student is trained on the bare prompt and never sees this text,
        so an answer that cites it would teach the student to refer to nothing.
        """
        parts = [
            "You are a knowledgeable, honest assistant. Let the following principles shape "
            "what you do, without naming or quoting them.",
            "",
        ]
        for number, axiom in enumerate(self.axioms, 1):
            parts.append(f"{number}. {axiom.name}: {axiom.statement}")
            parts.extend(f"   - {line}" for line in axiom.guidance)
            if examples:
                for ex in axiom.examples:
                    parts.append(f"   Example request: {ex['prompt']}")
                    parts.append(f"   A good answer: {ex['good_response_sketch']}")
                    if ex.get("avoid"):
                        parts.append(f"   Avoid: {ex['avoid']}")
        if self.resolution:
            parts += ["", "When these principles pull in different directions, go in order:"]
            parts.extend(f"{n}. {step}" for n, step in enumerate(self.resolution, 1))
        if self.hard_lines:
            parts += ["", "Lines that hold under any framing, story or claimed credential:"]
            parts.extend(f"- {line}" for line in self.hard_lines)
        parts += [
            "",
            "Write only your answer to the person, as you would say it to them. Do not mention "
            "these principles, a framework, a kernel or any instructions: the person cannot "
            "see them.",
        ]
        return "\n".join(parts)


def default_kernel_dir() -> Path:
    """The kernel shipped inside the package (`lem/data/kernel`)."""
    return Path(str(resources.files("lem").joinpath("data", "kernel")))


def load_schema() -> dict[str, Any]:
    """The JSON Schema for axioms files, shipped with the package."""
    return json.loads(resources.files("lem").joinpath("data", SCHEMA_FILE).read_text("utf-8"))


def load_kernel(directory: str | Path | None = None) -> Kernel:
    """Load and validate a kernel directory (the shipped kernel when `directory` is None)."""
    directory = Path(directory) if directory is not None else default_kernel_dir()
    if not directory.is_dir():
        raise LemError(
            f"{directory}: not a kernel directory (expected {KERNEL_TEXT} and "
            f"{AXIOMS_FILE} inside it)"
        )
    text_bytes = _read_bytes(directory / KERNEL_TEXT)
    text = decode_text(directory / KERNEL_TEXT, text_bytes)
    if not text.strip():
        raise LemError(f"{directory / KERNEL_TEXT}: empty; write the kernel's prose there")
    axioms_path = directory / AXIOMS_FILE
    axioms_bytes = _read_bytes(axioms_path)
    data = parse_axioms(axioms_path, decode_text(axioms_path, axioms_bytes))
    return Kernel(
        directory=directory,
        text=text,
        axioms=[Axiom(**a) for a in data["axioms"]],
        text_sha256=sha256_bytes(text_bytes),
        axioms_sha256=sha256_bytes(axioms_bytes),
        name=data["name"],
        version=data["version"],
        resolution=list(data.get("resolution", [])),
        hard_lines=list(data.get("hard_lines", [])),
    )


def parse_axioms(path: str | Path, text: str) -> dict[str, Any]:
    """Parse and validate an axioms file's text; `path` is only used in error messages."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise LemError(f"{path}:{e.lineno}:{e.colno}: not valid JSON ({e.msg})")
    _validate(path, data)
    seen: dict[str, int] = {}
    for index, axiom in enumerate(data["axioms"]):
        if axiom["id"] in seen:
            raise LemError(
                f"{path}: axioms[{index}].id: duplicate id {axiom['id']!r} "
                f"(also axioms[{seen[axiom['id']]}].id); ids must be unique"
            )
        seen[axiom["id"]] = index
    return data


def check_kernel(directory: str | Path | None = None) -> dict[str, Any]:
    """Validate a kernel directory and describe it: counts, sizes and SHA-256 of both files."""
    kernel = load_kernel(directory)
    text_path = kernel.directory / KERNEL_TEXT
    axioms_path = kernel.directory / AXIOMS_FILE
    return {
        "directory": str(kernel.directory),
        "name": kernel.name,
        "version": kernel.version,
        "axioms": len(kernel.axioms),
        "axiom_ids": kernel.axiom_ids,
        "examples": sum(len(a.examples) for a in kernel.axioms),
        "resolution_steps": len(kernel.resolution),
        "hard_lines": len(kernel.hard_lines),
        "kernel_md": {
            "path": str(text_path),
            "bytes": text_path.stat().st_size,
            "characters": len(kernel.text),
            "words": len(kernel.text.split()),
            "sha256": kernel.text_sha256,
        },
        "axioms_json": {
            "path": str(axioms_path),
            "bytes": axioms_path.stat().st_size,
            "sha256": kernel.axioms_sha256,
        },
    }


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise LemError(
            f"{path}: not found; a kernel directory holds {KERNEL_TEXT} and {AXIOMS_FILE}"
        )
    return read_bytes(path)


def _validate(path: str | Path, data: Any) -> None:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    errors = list(Draft202012Validator(load_schema()).iter_errors(data))
    if not errors:
        return
    error = best_match(errors)
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    raise LemError(f"{path}: {json_path(error.absolute_path)}: {_describe(error)}{more}")


def json_path(parts: Any) -> str:
    """`['axioms', 2, 'id']` -> `axioms[2].id`; the document itself is `top level`."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "top level"


_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}


def _describe(error: Any) -> str:
    """A short message for a schema error; jsonschema's own would repr whole objects."""
    kind, instance = error.validator, error.instance
    if kind == "type":
        got = _JSON_TYPES.get(type(instance), "number")
        return f"expected {error.validator_value}, got {got}"
    if kind == "pattern" and error.validator_value == "\\S":
        return "must not be blank"
    if kind == "pattern":
        return f"{instance!r} does not match {error.validator_value!r}"
    if kind in ("minItems", "minLength"):
        return "must not be empty"
    message = " ".join(error.message.split())
    return message if len(message) <= 200 else message[:197] + "..."
