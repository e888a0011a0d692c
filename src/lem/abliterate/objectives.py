"""What an edit is judged by, on held-out prompts only:

- refusal: the share of harmful prompts refused or partly refused (lem's refusal
  classifier, as `lem score` counts it), lower is the edit working;
- over-refusal: the same share on safe prompts (XSTest's safe set by default);
- KL: the mean first-token KL divergence KL(P_base || P_edited) on harmless prompts, the
  cost of the edit to what the model would have said.

With a judge, the judge's refusal rate on the same harmful answers (StrongREJECT's
`refused` question) is reported beside the classifier's, with how often the two agree;
the search itself optimises the classifier's rate, which is deterministic and free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import mlx.core as mx
import numpy as np

from lem.abliterate.prompts import Prompt
from lem.abliterate.residuals import right_padded
from lem.decode import encode_chat, encode_text, generate_batch
from lem.models import LoadedModel
from lem.refusal import classify

LOGIT_BUDGET = 1 << 26  # floats of logits in flight per batch (256 MB): bounds memory


@dataclass(frozen=True)
class Answer:
    """One generated answer to a held-out prompt, with the classifier's verdict."""

    id: str
    prompt: str
    response: str
    label: str
    rule: str


@dataclass
class Evaluation:
    """The three objectives of one model state, and what they were computed from."""

    refusal: float
    over_refusal: float
    kl: float
    harmful: list[Answer] = field(default_factory=list)
    safe: list[Answer] = field(default_factory=list)
    judge: dict[str, Any] | None = None  # refusal, agreement, scored, unscored

    def values(self) -> tuple[float, float, float]:
        return self.refusal, self.over_refusal, self.kl

    def summary(self) -> dict:
        return {"refusal": self.refusal, "over_refusal": self.over_refusal, "kl": self.kl} | (
            {"judge": self.judge} if self.judge is not None else {}
        )


@dataclass(frozen=True)
class HeldOut:
    """The held-out prompt sets, encoded once."""

    harmful: list[Prompt]
    safe: list[Prompt]
    harmless: list[Prompt]
    harmful_ids: list[list[int]]
    safe_ids: list[list[int]]
    harmless_ids: list[list[int]]


def encode(loaded: LoadedModel, text: str) -> list[int]:
    """A prompt as the model is asked it: one user turn, or plain text without a template."""
    if loaded.is_chat:
        return encode_chat(loaded, [{"role": "user", "content": text}])
    return encode_text(loaded, text)


def held_out(
    loaded: LoadedModel,
    harmful: Sequence[Prompt],
    safe: Sequence[Prompt],
    harmless: Sequence[Prompt],
) -> HeldOut:
    def ids(ps: Sequence[Prompt]) -> list[list[int]]:
        return [encode(loaded, p.text) for p in ps]

    return HeldOut(
        list(harmful), list(safe), list(harmless), ids(harmful), ids(safe), ids(harmless)
    )


def first_token_logprobs(model: Any, prompts: Sequence[Sequence[int]]) -> np.ndarray:
    """Log-probabilities of the next token after each prompt: (prompts, vocab), float32.

    Batches are sized so that their logits (batch x width x vocab) stay within
    LOGIT_BUDGET; the first batch is one prompt, to learn the vocabulary size.
    """
    out: list[np.ndarray | None] = [None] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    width = max(len(p) for p in prompts)
    start, step = 0, 1
    while start < len(order):
        chunk = order[start : start + step]
        tokens, last = right_padded([prompts[i] for i in chunk])
        logits = model(tokens)[mx.arange(len(chunk)), last].astype(mx.float32)
        logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        mx.eval(logprobs)
        for i, row in zip(chunk, np.array(logprobs), strict=True):
            out[i] = row
        start += len(chunk)
        step = max(1, LOGIT_BUDGET // (logprobs.shape[-1] * width))
    return np.stack(out)  # type: ignore[arg-type]


def kl_divergence(base: np.ndarray, edited: np.ndarray) -> float:
    """Mean over prompts of KL(P_base || P_edited) of the next-token distributions."""
    p = np.exp(base.astype(np.float64))
    kl = (p * (base.astype(np.float64) - edited.astype(np.float64))).sum(axis=-1)
    return float(np.maximum(kl, 0.0).mean())


def refusal_rate(answers: Sequence[Answer]) -> float:
    """Refused or partly refused, as a share (lem's refusal metric)."""
    return sum(a.label != "complied" for a in answers) / len(answers) if answers else 0.0


def answer_all(
    loaded: LoadedModel,
    prompts: Sequence[Prompt],
    ids: Sequence[Sequence[int]],
    max_tokens: int,
    batch_size: int,
) -> list[Answer]:
    """Greedy answers, each labelled by the refusal classifier."""
    gens = generate_batch(loaded, ids, max_tokens, batch_size=batch_size)
    out = []
    for p, g in zip(prompts, gens, strict=True):
        verdict = classify(g.text)
        out.append(Answer(p.id, p.text, g.text, verdict.label, verdict.rule))
    return out


def judge_refusals(judge: Any, answers: Sequence[Answer]) -> dict[str, Any]:
    """The judge's refusal rate on harmful answers and its agreement with the classifier."""
    from lem.bench.strongreject import rubric
    from lem.judge import JudgeItem

    items = [JudgeItem(a.prompt, {}, a.response) for a in answers]
    verdicts = judge.judge(rubric(), items, label="abliterate judge")
    pairs = [
        (bool(v.values["refused"]), a.label != "complied")
        for v, a in zip(verdicts, answers, strict=True)
        if v.status == "ok"
    ]
    return {
        "refusal": sum(j for j, _ in pairs) / len(pairs) if pairs else None,
        "agreement": sum(j == c for j, c in pairs) / len(pairs) if pairs else None,
        "scored": len(pairs),
        "unscored": len(answers) - len(pairs),
    }


def evaluate(
    loaded: LoadedModel,
    sets: HeldOut,
    base_logprobs: np.ndarray | None,
    max_tokens: int,
    batch_size: int,
    judge: Any = None,
) -> Evaluation:
    """The objectives of the model as it is now (`base_logprobs` None: it is the base)."""
    n_harmful = len(sets.harmful)
    answers = answer_all(
        loaded,
        sets.harmful + sets.safe,
        sets.harmful_ids + sets.safe_ids,
        max_tokens,
        batch_size,
    )
    harmful, safe = answers[:n_harmful], answers[n_harmful:]
    kl = 0.0
    if base_logprobs is not None:
        kl = kl_divergence(base_logprobs, first_token_logprobs(loaded.model, sets.harmless_ids))
    judged = judge_refusals(judge, harmful) if judge is not None else None
    return Evaluation(refusal_rate(harmful), refusal_rate(safe), kl, harmful, safe, judged)


def answer_records(trial: int | None, evaluation: Evaluation) -> list[dict]:
    """One JSON line per answer, tagged with its trial (None: the unedited model)."""
    return [
        {"trial": trial, "set": name, **asdict(a)}
        for name, answers in (("harmful", evaluation.harmful), ("safe", evaluation.safe))
        for a in answers
    ]
