"""The search: Optuna's multi-objective TPE over the layer profile (peak, span, weight) and
the layer whose direction is used, minimising refusal, over-refusal and KL together.

The study lives in RUN/study.db (SQLite), so a killed search continues where it was.
The run directory is locked while a search goes, so a trial still marked RUNNING when a
search starts was left by a killed process: it is marked FAIL and its parameters queued
again, so no trial is lost. Each new trial's sampler is seeded with the seed plus the
number of finished trials, and TPE reads only finished trials, so a search that was
killed and resumed proposes the same parameters as one that never stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lem.abliterate.edit import Profile
from lem.abliterate.objectives import Evaluation

OBJECTIVES = ("refusal", "over_refusal", "kl")
STUDY_FILE = "study.db"
STUDY_NAME = "abliterate"


@dataclass(frozen=True)
class Space:
    """Search ranges in layer indices (fractions of the last layer index, except `weight`)."""

    layers: int
    peak: tuple[float, float] = (0.4, 1.0)
    span: tuple[float, float] = (1.0, 0.6)  # (layers, fraction of the layer count)
    weight: tuple[float, float] = (0.5, 2.0)
    source: tuple[float, float] = (0.4, 0.9)

    def suggest(self, trial: Any) -> tuple[int, Profile]:
        """The source layer and profile of one trial, drawn by the trial's sampler."""
        last = self.layers - 1
        low, high = round(self.source[0] * last), round(self.source[1] * last)
        source = trial.suggest_int("source_layer", low, max(low, high))
        peak = trial.suggest_float("peak", self.peak[0] * last, self.peak[1] * last)
        span_high = max(self.span[0], self.span[1] * self.layers)
        span = trial.suggest_float("span", self.span[0], span_high)
        weight = trial.suggest_float("weight", *self.weight)
        return source, Profile(peak, span, weight)


def open_study(run: Path) -> tuple[Any, list[int]]:
    """The run's study, created on first use, and the numbers of the trials a killed
    search left RUNNING, now queued again."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(f"sqlite:///{(run / STUDY_FILE).resolve()}")
    study = optuna.create_study(
        storage=storage,
        study_name=STUDY_NAME,
        directions=["minimize"] * len(OBJECTIVES),
        load_if_exists=True,
    )
    return study, requeue_killed(study, storage)


def requeue_killed(study: Any, storage: Any) -> list[int]:
    """Mark trials left RUNNING by a killed process FAIL and queue their parameters again."""
    from optuna.trial import TrialState

    study_id = storage.get_study_id_from_name(STUDY_NAME)
    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in stale:
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
    return [t.number for t in stale]


def finished(study: Any) -> list[Any]:
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def run_trials(
    study: Any,
    space: Space,
    evaluate: Callable[[int, Profile, Any], Evaluation],
    trials: int,
    seed: int,
    startup: int,
    on_trial: Callable[[Any], None] | None = None,
) -> int:
    """Run trials until `trials` have finished; return how many ran now.

    `evaluate(source_layer, profile, trial)` edits, measures and un-edits the model;
    `on_trial(frozen_trial)` is called once each finished trial is stored.
    """
    import optuna

    def objective(trial: Any) -> tuple[float, float, float]:
        source, profile = space.suggest(trial)
        return evaluate(source, profile, trial).values()

    ran = 0
    callbacks = [lambda _study, t: on_trial(t)] if on_trial is not None else []
    while (done := len(finished(study))) < trials:
        study.sampler = optuna.samplers.TPESampler(seed=seed + done, n_startup_trials=startup)
        study.optimize(objective, n_trials=1, callbacks=callbacks)
        ran += 1
    return ran


def pareto(study: Any) -> list[Any]:
    """The finished trials no other trial beats on all three objectives, by trial number."""
    return sorted(study.best_trials, key=lambda t: t.number) if finished(study) else []


def suggested(trials: list[Any], kl_max: float) -> Any | None:
    """The trial to export by default: the lowest refusal (then over-refusal) among those
    with KL at most `kl_max`; the lowest KL when none is that close to the base."""
    if not trials:
        return None
    close = [t for t in trials if t.values[2] <= kl_max]
    if close:
        return min(close, key=lambda t: (t.values[0], t.values[1], t.values[2], t.number))
    return min(trials, key=lambda t: (t.values[2], t.number))


def plot_front(study: Any, path: Path, baseline: Evaluation | None = None) -> Path:
    """Refusal against KL for every finished trial, the Pareto front marked and labelled,
    colour the over-refusal; the unedited model as a star at KL 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done, front = finished(study), {t.number for t in pareto(study)}
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    if done:
        xs, ys, cs = zip(*((t.values[0], t.values[2], t.values[1]) for t in done), strict=True)
        edges = ["black" if t.number in front else "none" for t in done]
        dots = ax.scatter(xs, ys, c=cs, cmap="viridis", vmin=0, vmax=1, edgecolors=edges, s=40)
        fig.colorbar(dots, ax=ax, label="over-refusal (safe prompts)")
        for t in done:
            if t.number in front:
                ax.annotate(str(t.number), (t.values[0], t.values[2]), fontsize=7)
    if baseline is not None:
        ax.scatter([baseline.refusal], [0.0], marker="*", s=140, color="red", label="unedited")
        ax.legend(loc="upper left")
    ax.set_xlim(-0.03, 1.03)  # rates on one scale, run after run
    ax.set_xlabel("refusal rate on held-out harmful prompts")
    ax.set_ylabel("first-token KL from the unedited model")
    ax.set_title(f"lem abliterate: {len(done)} trials, Pareto front outlined")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
