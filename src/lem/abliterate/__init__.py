"""`lem abliterate`: remove a model's refusal by editing its weights, made locally, as the
control for a kernel fine-tune ("did it teach judgement, or only refusal?").

The method is heretic's directional ablation with iconoclast's benign-subspace
preservation: residual states at the last prompt token for harmful and harmless prompts
(`residuals`), a refusal direction per layer kept clear of the harmless prompts' main
directions (`direction`), a rank-1 edit of the matrices that write into the residual
stream with a triangular layer profile (`edit`), judged on held-out prompts by refusal,
over-refusal and first-token KL (`objectives`), and searched with Optuna (`search`).

Run directory: settings.json, directions.npz, study.db (the Optuna study), baseline.json
(the unedited model's objectives), trials.jsonl (one line per finished trial),
answers.jsonl (every held-out answer, with its trial and label), pareto.png,
manifest.json; `--trial N` adds trial-N/adapter (an mlx-lm adapter) and trial-N/model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lem.config import check, resolve, setting
from lem.errors import LemError

# Settings that do not change what a trial measures: a run may continue with them changed.
COSMETIC = {"out", "trials", "trial", "fuse", "judge", "judge_base_url", "batch_size", "kl_max"}


@dataclass
class AbliterateSettings:
    """Everything that shapes an abliteration run; ranges follow iconoclast's document."""

    model: str | None = setting(None, "Model to abliterate: MLX directory, hub id or pypi:<name>")
    out: Path = setting(Path("runs/abliterate"), "Run directory (it remembers these settings)")
    harmful: str = setting(
        "harmbench:val:standard+strongreject", "Harmful prompts that make the direction"
    )
    harmless: str = setting(
        "lem:harmless", "Harmless prompts: the other side of the direction, and the KL set"
    )
    harmful_eval: str = setting(
        "harmbench:test:standard", "Held-out harmful prompts, for the refusal rate"
    )
    safe_eval: str = setting("xstest:safe", "Held-out safe prompts, for over-refusal")
    harmless_eval: str | None = setting(
        None, "Held-out harmless prompts for KL (none: held out from --harmless)"
    )
    n_train: int = setting(64, "Prompts per side that make the direction", min=2)
    n_eval: int = setting(32, "Held-out prompts per objective", min=1)
    benign_rank: int = setting(8, "Harmless principal directions kept out of the edit", min=0)
    orthogonalize: bool = setting(False, "Also keep the harmless mean out of the edit")
    trials: int = setting(24, "Finished trials the study should have", min=0)
    startup_trials: int = setting(8, "Random trials before TPE takes over", min=1)
    peak_min: float = setting(0.4, "Profile peak, lowest (fraction of the last layer)", min=0)
    peak_max: float = setting(1.0, "Profile peak, highest (fraction of the last layer)", min=0)
    span_min: float = setting(1.0, "Profile span, shortest (layers)", min=1)
    span_max: float = setting(0.6, "Profile span, longest (fraction of the layer count)", gt=0)
    weight_min: float = setting(0.5, "Profile maximum lambda, lowest", gt=0)
    weight_max: float = setting(2.0, "Profile maximum lambda, highest", gt=0)
    source_min: float = setting(0.4, "Direction's layer, lowest (fraction)", min=0, below=1.01)
    source_max: float = setting(0.9, "Direction's layer, highest (fraction)", min=0, below=1.01)
    max_tokens: int = setting(48, "Answer cap on held-out prompts (a refusal shows early)", min=1)
    batch_size: int = setting(32, "Prompts per batch", min=1)
    seed: int = setting(0, "Prompt splits and sampler seed", min=0)
    kl_max: float = setting(0.1, "KL the suggested trial may reach", min=0)
    judge: str | None = setting(None, "LLM judge for a second refusal rate (gemini/..., ...)")
    judge_base_url: str | None = setting(None, "Server URL for openai/ judges")
    trial: int | None = setting(
        None,
        "Export this finished trial (-1: the suggested one) instead of searching",
        min=0,
        special=(-1,),
    )
    fuse: bool = setting(True, "With --trial: also fuse the adapter into RUN/trial-N/model")


@dataclass
class AbliterateReport:
    """What a search did: the run, its trials, the Pareto front and the suggested trial."""

    out: Path
    finished: int
    ran: int
    requeued: list[int]
    baseline: dict
    front: list[dict]
    suggested: int | None
    plot: Path
    seconds: float
    notes: list[str] = field(default_factory=list)


@dataclass
class ExportReport:
    """Where an exported trial went."""

    trial: int
    values: dict
    adapter: Path
    model: Path | None


def check_settings(s: AbliterateSettings) -> None:
    """Every field's rules, then what they cannot see."""
    check(s, "abliterate")
    if not s.model:
        raise LemError("no model: pass --model (the model to abliterate)")
    for low, high in (("peak_min", "peak_max"), ("weight_min", "weight_max")):
        if getattr(s, low) > getattr(s, high):
            raise LemError(f"--{low.replace('_', '-')} is above --{high.replace('_', '-')}")
    if s.source_min > s.source_max:
        raise LemError("--source-min is above --source-max")


def resolve_settings(flags: dict) -> AbliterateSettings:
    """Flags over the settings the run directory remembers (defaults for a new run), so
    `lem abliterate --out RUN --trial 7` needs no other flag."""
    from lem.abliterate.run import SETTINGS_FILE
    from lem.store import read_json

    out = Path(flags.get("out") or AbliterateSettings().out)
    stored = read_json(out / SETTINGS_FILE) if (out / SETTINGS_FILE).is_file() else {}
    remembered = {k: v for k, v in stored.get("settings", {}).items() if k not in ("trial", "fuse")}
    return resolve(AbliterateSettings, remembered, flags, where=str(out / SETTINGS_FILE))


def abliterate(settings: AbliterateSettings, stream=None) -> AbliterateReport:
    """Search for the edit (or continue the run's search) until `trials` have finished."""
    from lem.abliterate.run import search

    check_settings(settings)
    return search(settings, stream)


def export(settings: AbliterateSettings, stream=None) -> ExportReport:
    """Write finished trial `settings.trial` as an adapter (and a fused model)."""
    from lem.abliterate.run import export_trial

    check_settings(settings)
    if settings.trial is None:
        raise LemError("export: give --trial N (a finished trial) or -1 for the suggested one")
    return export_trial(settings, stream)
