"""The experiment file (`lem.toml`) and the one way its tables become a stage's settings.

`stage_settings(plan, stage, flags)` (`resolve_stage`, then `check_stage`) is what each
stage command's `--config` gets and what `lem run` gives every stage, so
`lem train --config lem.toml` trains exactly what `lem run lem.toml` would train, with
any flags given on top. What the file says is
resolved here once: "base" as a model (the experiment's base), "brief" and "full" as
the shipped kernels, "serve:base" as a judge served from the base model, relative paths
against the file's directory, and every stage's output inside the run directory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from lem.config import check, read_toml, resolve, setting
from lem.errors import LemError

STAGES = ("generate", "train", "abliterate", "bench", "score", "report")
TABLES = ("experiment", "models", *STAGES)
BASE = "base"  # in [models], teacher and judge: the experiment's base model
ABLITERATED = "abliterate"  # in [models]: the base abliterated by `lem abliterate` (optional)
SHIPPED_KERNELS = {"full": "kernel", "brief": "kernel-brief"}  # [generate] kernel = "brief"
OUTPUTS = {  # each stage's directory inside the run directory
    "generate": "training",
    "train": "train",
    "abliterate": "abliterate",
    "bench": "results",
    "score": "scores",
    "report": "report",
}


@dataclass
class Experiment:
    """The `[experiment]` table."""

    name: str = setting("lem", "A name for the experiment")
    out: Path = setting(Path("lem-run"), "The run directory, relative to the file")
    base: str | None = setting(None, "The model to fine-tune: a directory, hub id or pypi:<name>")
    tuned: str = setting("lek", "The fine-tuned variant's name in results and reports")
    root: Path | None = setting(
        None, "The directory relative paths are read from", shown="the file's directory"
    )


@dataclass
class Plan:
    """An experiment file resolved: where things go and what every stage will be given."""

    source: str  # the experiment file, or "quick" for the shipped profile
    root: Path  # relative paths in the file are relative to this directory
    experiment: Experiment
    raw: dict  # the parsed file, for lem.resolved.toml
    base: str | None  # the base model spec, relative paths resolved
    models: dict[str, str]  # [models]: name -> spec ("base" resolved)
    tables: dict[str, dict] = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return self.root / self.experiment.out

    def stage_out(self, stage: str) -> Path:
        return self.out / OUTPUTS[stage]

    @property
    def tuned_model(self) -> Path:
        return self.stage_out("train") / "model"

    @property
    def abliterated_model(self) -> Path:
        return self.stage_out("abliterate") / "model"

    @property
    def abliterates(self) -> bool:
        """True when [models] asks for the abliterated base (the abliterate stage runs)."""
        return ABLITERATED in self.models.values()


def shipped_experiment(name: str) -> Path:
    """A shipped experiment file: "quick" or "default"."""
    return Path(str(resources.files("lem") / "data" / "experiments" / f"{name}.toml"))


def load_plan(
    path: str | Path | None, quick: bool = False, out: Path | None = None, need_base: bool = True
) -> Plan:
    """Read and check an experiment file (or the shipped quick profile).

    `need_base`: the file must name the base model (`lem run` trains it); a stage command
    reading the file for its own table needs it only where the table refers to it.
    """
    if path is None and not quick:
        raise LemError(
            "give an experiment file (lem run lem.toml) or --quick; `lem init` writes one"
        )
    file = shipped_experiment("quick") if path is None else Path(path)
    raw = read_toml(file)
    source = "quick" if path is None else str(file)
    unknown = set(raw) - set(TABLES)
    if unknown:
        raise LemError(
            f"{file}: unknown table(s) {', '.join(sorted(unknown))}; known: {', '.join(TABLES)}"
        )
    for name in TABLES:
        if not isinstance(raw.get(name, {}), dict):
            raise LemError(f"{file}: [{name}] must be a table")
    experiment = resolve(
        Experiment, raw.get("experiment", {}), {"out": out}, f"{source} [experiment]"
    )
    root = Path.cwd() if path is None else file.parent
    if experiment.root is not None:  # lem.resolved.toml names the original file's directory
        root = root / experiment.root
    if experiment.base is None and need_base:
        raise LemError(f"{source} [experiment]: set base = the model to fine-tune")
    base = local(experiment.base, root) if experiment.base is not None else None
    models = {}
    for name, spec in raw.get("models", {}).items():
        if name == experiment.tuned:
            raise LemError(f"{source} [models]: {name!r} is the tuned model's name; pick another")
        if not isinstance(spec, str):
            raise LemError(f"{source} [models]: {name} must be a model spec (a string)")
        if spec == ABLITERATED:
            _base(source, base)  # abliterating needs the base
            models[name] = ABLITERATED
        else:
            models[name] = _base(source, base) if spec == BASE else local(spec, root)
    tables = {t: dict(raw.get(t, {})) for t in STAGES}
    for stage, table in tables.items():
        if "out" in table:
            raise LemError(
                f"{source} [{stage}]: out is set by the run directory ([experiment] out); remove it"
            )
    return Plan(source, root, experiment, raw, base, models, tables)


def local(spec: str, root: Path) -> str:
    """A relative path in the file is relative to the file; ids and URLs stay as they are."""
    for prefix in ("mlx/", "serve:"):
        if spec.startswith(prefix):
            return prefix + local(spec[len(prefix) :], root)
    candidate = root / spec
    return str(candidate) if not Path(spec).is_absolute() and candidate.exists() else spec


def _path(value: Any, root: Path) -> Any:
    return str(root / value) if isinstance(value, str) and not Path(value).is_absolute() else value


def _base(source: str, base: str | None) -> str:
    if base is None:
        raise LemError(f'{source} [experiment]: set base = the model to fine-tune (used as "base")')
    return base


def _model(spec: str, plan: Plan) -> str:
    """A teacher or judge spec with "base" (bare, mlx/ or serve:) as the experiment's base."""
    if spec == BASE:
        return f"mlx/{_base(plan.source, plan.base)}"
    if spec == f"serve:{BASE}":
        return f"serve:{_base(plan.source, plan.base)}"
    return local(spec, plan.root)


# ---------------------------------------------------------------- per-stage tables


def _generate(plan: Plan, table: dict) -> dict:
    if "teacher" in table:
        table["teacher"] = _model(table["teacher"], plan)
    if "kernel" in table:
        table["kernel"] = _kernel(table["kernel"], plan)
    if "seeds" in table:
        table["seeds"] = _path(table["seeds"], plan.root)
    return table | {"out": str(plan.stage_out("generate"))}


def _kernel(value: Any, plan: Plan) -> Any:
    """A kernel setting: "full" or "brief" (the shipped kernels), else a directory."""
    from lem.kernel import default_kernel_dir

    if value in SHIPPED_KERNELS:
        return str(default_kernel_dir().parent / SHIPPED_KERNELS[value])
    return _path(value, plan.root)


def _train(plan: Plan, table: dict) -> dict:
    if "resume_adapter" in table:
        table["resume_adapter"] = _path(table["resume_adapter"], plan.root)
    if plan.base is not None:
        table["model"] = plan.base
    table["data"] = str(plan.stage_out("generate"))
    return table | {"out": str(plan.stage_out("train"))}


def _abliterate(plan: Plan, table: dict) -> dict:
    if plan.base is not None:
        table["model"] = plan.base
    return table | {"out": str(plan.stage_out("abliterate"))}


def _bench(plan: Plan, table: dict) -> dict:
    from lem.bench.data import HUB

    models = {
        name: str(plan.abliterated_model) if spec == ABLITERATED else spec
        for name, spec in plan.models.items()
    }
    given = table.get("models", {})
    if not isinstance(given, dict):
        raise LemError(f"{plan.source} [bench]: models must be a table of name = model")
    models |= {name: local(str(spec), plan.root) for name, spec in given.items()}
    if plan.base is not None:  # an experiment that trains benchmarks what it trained
        models[plan.experiment.tuned] = str(plan.tuned_model)
    data = table.get("data", {})
    if not isinstance(data, dict):
        raise LemError(f"{plan.source} [bench]: data must be a table of benchmark = file")
    table["data"] = {
        name: value if value == HUB else _path(value, plan.root) for name, value in data.items()
    }
    return table | {"models": models, "out": str(plan.stage_out("bench"))}


def _score(plan: Plan, table: dict) -> dict:
    if "judge" in table:
        table["judge"] = _model(table["judge"], plan)
    if "cache" in table:
        table["cache"] = _path(table["cache"], plan.root)
    # The ethics rubric reads the kernel the training data was made with, unless told.
    kernel = _kernel(table["kernel"], plan) if "kernel" in table else None
    kernel = kernel or _generate(plan, dict(plan.tables["generate"])).get("kernel")
    if kernel is not None:
        table["kernel"] = kernel
    data = _bench(plan, dict(plan.tables["bench"]))["data"]
    table |= {"results": [str(plan.stage_out("bench"))], "data": data}
    return table | {"out": str(plan.stage_out("score"))}


def _report(plan: Plan, table: dict) -> dict:
    return table | {"scores": [str(plan.stage_out("score"))]}


def settings_class(stage: str) -> type:
    """The settings dataclass of a stage."""
    if stage == "generate":
        from lem.generate import GenerateSettings

        return GenerateSettings
    if stage == "train":
        from lem.train import TrainSettings

        return TrainSettings
    if stage == "bench":
        from lem.bench.runner import BenchSettings

        return BenchSettings
    if stage == "score":
        from lem.score import ScoreSettings

        return ScoreSettings
    if stage == "report":
        from lem.report import ReportSettings

        return ReportSettings
    if stage == "abliterate":
        from lem.abliterate import AbliterateSettings

        return AbliterateSettings
    raise LemError(f"unknown stage {stage!r}; choose among {', '.join(STAGES)}")


TABLE_RESOLVERS: dict[str, Callable[[Plan, dict], dict]] = {
    "generate": _generate,
    "train": _train,
    "bench": _bench,
    "score": _score,
    "report": _report,
    "abliterate": _abliterate,
}


def check_stage(plan: Plan, stage: str, settings: Any) -> None:
    """The stage's own checks (names, specs, files that must exist, values that must
    agree), with an error naming the experiment file and table. The tuned model is not
    required to exist yet: the train stage makes it."""
    where = f"{plan.source} [{stage}]"
    try:
        if stage == "generate":
            from lem.generate import check_settings

            check_settings(settings)
        elif stage == "train":
            from lem.train import check_settings

            check_settings(settings)
        elif stage == "bench":
            from lem.bench.runner import check_settings

            made = (str(plan.tuned_model), str(plan.abliterated_model))
            check_settings(settings, pending=[n for n, m in settings.models.items() if m in made])
        elif stage == "score":
            from lem.score import check_settings

            check_settings(settings)
        elif stage == "abliterate" and plan.abliterates:
            from lem.abliterate import check_settings

            check_settings(settings)
        else:
            check(settings, where)
    except LemError as e:
        raise LemError(str(e) if str(e).startswith(where) else f"{where}: {e}") from None


def resolve_stage(plan: Plan | None, stage: str, flags: Mapping[str, Any] | None = None) -> Any:
    """A stage's settings: defaults < the plan's table (resolved as above) < flags, each
    value type- and range-checked."""
    cls = settings_class(stage)
    if plan is None:
        return resolve(cls, {}, flags, where=stage)
    table = TABLE_RESOLVERS[stage](plan, dict(plan.tables[stage]))
    return resolve(cls, table, flags, where=f"{plan.source} [{stage}]")


def stage_settings(plan: Plan | None, stage: str, flags: Mapping[str, Any] | None = None) -> Any:
    """`resolve_stage`, then, with a plan, `check_stage`."""
    settings = resolve_stage(plan, stage, flags)
    if plan is not None:
        check_stage(plan, stage, settings)
    return settings


def settings_for(stage: str, config: Path | None, flags: Mapping[str, Any]) -> Any:
    """What a stage command's `--config FILE` and flags give: the same as `lem run`."""
    plan = load_plan(config, need_base=False) if config is not None else None
    return stage_settings(plan, stage, flags)


def init_experiment(directory: str | Path, quick: bool = False, force: bool = False) -> Path:
    """Write a commented lem.toml (the full profile, or the quick one) into `directory`."""
    from lem.store import atomic_write_text, check_output_dir

    target = Path(directory) / "lem.toml"
    if target.exists() and not force:
        raise LemError(f"{target}: already exists; pass --force to replace it")
    check_output_dir(Path(directory), "DIRECTORY")
    atomic_write_text(target, shipped_experiment("quick" if quick else "default").read_text())
    return target
