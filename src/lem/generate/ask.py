"""Asking the teacher: every missing or truncated answer, appended durably as it arrives.

Raw answers go to `OUT/work/teacher-<key>.jsonl`. The key hashes what shapes a raw answer
(teacher identity, kernel, prompt template, sampling settings), so a changed config starts
a new work file and never mixes with old answers; each line also carries the hash of its
exact request, so an edited seed prompt is asked again while the others are reused. A
killed run re-run asks only what is missing; failed calls from an earlier run are asked
again. Answers cut off by the token cap are asked again with twice the cap, up to
`length_retries` times.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from lem.clients import ChatClient, ChatRequest, ChatResult
from lem.generate.plan import PlanItem
from lem.generate.prompts import TEMPLATE_VERSION
from lem.progress import Progress
from lem.store import JsonlAppender, read_jsonl, repair_tail, sha256_json

LENGTH_GROWTH = 2  # each regeneration of a truncated answer doubles the token cap


def work_key(settings, kernel, teacher_identity: str) -> str:
    """Hash of everything that shapes a raw answer except the seed prompt itself."""
    return sha256_json(
        {
            "teacher": teacher_identity,
            "kernel": kernel.text_sha256,
            "axioms": kernel.axioms_sha256,
            "template": TEMPLATE_VERSION,
            "max_tokens": settings.max_tokens,
            "length_retries": settings.length_retries,
            "temperature": settings.temperature,
            "repetition_penalty": settings.repetition_penalty,
            "seed": settings.seed,
        }
    )


@dataclass
class _Job:
    """One request on its way: the plan item, its round and its exact request."""

    item: PlanItem
    round: int
    request: ChatRequest
    request_sha: str


def _request(item: PlanItem, messages: list[dict], rnd: int, s) -> ChatRequest:
    return ChatRequest(
        messages=messages,
        max_tokens=s.max_tokens * LENGTH_GROWTH**rnd,
        temperature=s.temperature,
        seed=s.seed + item.sample,
        repetition_penalty=s.repetition_penalty,
    )


def load_work(path: Path, shas: dict[str, str]) -> dict[str, dict]:
    """The latest raw answer per item id whose request still matches the plan."""
    if not path.exists():
        return {}
    repair_tail(path)
    latest: dict[str, dict] = {}
    for record in read_jsonl(path, required=("id", "request_sha", "round")):
        if shas.get(record["id"]) == record["request_sha"]:
            latest[record["id"]] = record
    return latest


def _is_final(record: dict, settings) -> bool:
    if record.get("error") is not None:
        return True
    return record.get("finish_reason") != "length" or record["round"] >= settings.length_retries


def _next_jobs(plan, state, requests, settings, retry_failed: bool) -> list[_Job]:
    jobs = []
    for item in plan:
        messages, sha = requests[item.id]
        last = state.get(item.id)
        if last is None:
            rnd = 0
        elif last.get("error") is not None:
            if not retry_failed:
                continue
            rnd = last["round"]
        elif not _is_final(last, settings):
            rnd = last["round"] + 1
        else:
            continue
        jobs.append(_Job(item, rnd, _request(item, messages, rnd, settings), sha))
    return jobs


def ask_teacher(
    plan: list[PlanItem],
    requests: dict[str, tuple[list[dict], str]],
    state: dict[str, dict],
    work: Path,
    settings,
    client: ChatClient | None,
) -> int:
    """Ask for every missing or truncated answer, appending each to `work`; return calls made."""
    jobs = _next_jobs(plan, state, requests, settings, retry_failed=True)
    if not jobs:
        return 0
    owned = client is None
    if owned:
        from lem.clients import make_client

        client = make_client(settings.teacher, settings, settings.teacher_base_url)
    progress = Progress("generate", total=len(plan), done=len(plan) - len(jobs))
    calls = 0
    try:
        with JsonlAppender(work) as out:
            while jobs:
                for start in range(0, len(jobs), settings.batch_size):
                    batch = jobs[start : start + settings.batch_size]
                    _ask_batch(client, batch, state, out, progress, settings)
                    calls += len(batch)
                jobs = _next_jobs(plan, state, requests, settings, retry_failed=False)
    finally:
        progress.close()
        if owned:
            client.close()
    return calls


def _ask_batch(client, batch: list[_Job], state, out, progress, settings) -> None:
    lock = threading.Lock()  # API backends report from worker threads

    def on_result(index: int, result: ChatResult) -> None:
        job = batch[index]
        record = {
            "id": job.item.id,
            "seed_id": job.item.seed_id,
            "request_sha": job.request_sha,
            "round": job.round,
            "max_tokens": job.request.max_tokens,
            **_outcome(result),
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "attempts": result.attempts,
        }
        with lock:
            out.write(record)
            state[job.item.id] = record
            final = _is_final(record, settings)
            note = "" if final else f"{job.item.id} truncated, asking again"
            progress.update(1 if final else 0, tokens=result.completion_tokens, note=note)

    client.complete([j.request for j in batch], on_result=on_result)


def _outcome(result: ChatResult) -> dict:
    """Text, finish reason, status and error of a result, and what the backend reported.

    An answer with no text (status "empty" or "blocked") is an answer, kept as empty text
    so the gates count it (or, when it hit the token cap, the truncation gate asks
    again); only call failures (status "error") are retried.
    """
    outcome = {"finish_reason": result.finish_reason, "status": result.status}
    outcome["extra"] = result.extra
    if result.ok:
        return outcome | {"text": result.text, "error": None}
    if result.status in ("empty", "blocked"):
        return outcome | {"text": "", "error": None, "empty": result.error or result.status}
    return outcome | {"text": None, "error": result.error or "no text returned"}
