"""`lem kernel`: validate and describe an ethical kernel (and, optionally, seed files)."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group()
def kernel() -> None:
    """Validate and inspect an ethical kernel (kernel.md + axioms.json)."""


@kernel.command("check")
@click.argument("directory", required=False, type=click.Path(path_type=Path))
@click.option(
    "--seeds",
    "seed_files",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Also validate this seeds JSONL file; its tensions must name this kernel's axioms "
    "(repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check(directory: Path | None, seed_files: tuple[Path, ...], as_json: bool) -> None:
    """Validate the kernel in DIRECTORY [the shipped kernel]; print counts, sizes and SHA-256.

    Exits with code 2 and one line naming the file and the problem when anything is wrong.
    """
    from lem.kernel import check_kernel
    from lem.seeds import check_seeds

    report = check_kernel(directory)
    report["seeds"] = [check_seeds(path, report["axiom_ids"]) for path in seed_files]
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for line in _lines(report):
        click.echo(line)


def _lines(report: dict) -> list[str]:
    text, axioms = report["kernel_md"], report["axioms_json"]
    lines = [
        f"kernel       {report['directory']}  ({report['name']}, version {report['version']})",
        f"axioms       {report['axioms']}: {', '.join(report['axiom_ids'])} "
        f"({report['examples']} examples, {report['resolution_steps']} resolution steps)",
        f"kernel.md    {text['bytes']:,} bytes, {text['characters']:,} characters, "
        f"{text['words']:,} words  sha256 {text['sha256']}",
        f"axioms.json  {axioms['bytes']:,} bytes  sha256 {axioms['sha256']}",
    ]
    for seeds in report["seeds"]:
        kinds = ", ".join(f"{k} {n}" for k, n in seeds["kinds"].items())
        lines.append(
            f"seeds        {seeds['path']}: {seeds['seeds']} seeds, {len(seeds['domains'])} "
            f"domains; {kinds}  sha256 {seeds['sha256']}"
        )
    return lines
