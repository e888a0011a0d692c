"""`lem verify`."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("directory", default=".", type=click.Path(path_type=Path))
def verify(directory: Path) -> None:
    """Re-hash the outputs listed in every manifest.json under DIRECTORY [.].

    Prints OK or each problem, one a line; exits with code 2 when anything is missing
    or changed.
    """
    from lem.errors import LemError
    from lem.store import MANIFEST, verify_manifest

    if not directory.is_dir():
        raise LemError(f"{directory}: not a directory")
    manifests = sorted(directory.rglob(MANIFEST))
    if not manifests:
        raise LemError(f"{directory}: no {MANIFEST} found under it")
    bad = 0
    for path in manifests:
        problems = verify_manifest(path)
        if not problems:
            click.echo(f"OK  {path}")
        for problem in problems:
            click.echo(f"BAD {problem}")
        bad += bool(problems)
    click.echo(f"{len(manifests) - bad} of {len(manifests)} manifests OK")
    if bad:
        raise SystemExit(2)
