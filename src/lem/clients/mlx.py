"""An MLX model run in this process as a chat client (teacher or judge), batched."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lem.clients.base import ChatClient, ChatRequest, ChatResult, one_line
from lem.errors import LemError
from lem.models import LoadedModel, ModelRef, load_model, parse_model_ref


class MlxClient(ChatClient):
    """An MLX model run in this process, every request batched through `generate_batch`.

    Requests are encoded with the model's chat template and grouped by sampling settings
    (temperature, and seed when sampling), each group one continuous batch. A seed seeds
    its whole group, so a sampled answer is reproducible for the same set of requests.
    `json_schema` is NOT enforced locally: the model is only asked, through the prompt the
    caller writes, and its answer must be validated (it is recorded in `extra`).
    """

    def __init__(self, model: ModelRef | LoadedModel | str, batch_size: int = 32) -> None:
        if isinstance(model, str):
            model = parse_model_ref(model)
        self.loaded = model if isinstance(model, LoadedModel) else load_model(model.name)
        self.spec = f"mlx/{self.loaded.spec}"
        self.batch_size = batch_size
        if not self.loaded.is_chat:
            raise LemError(
                f"{self.loaded.path}: the model has no chat template, so it cannot serve as a "
                "chat teacher or judge; use an instruction-tuned model"
            )

    def complete(
        self,
        requests: Sequence[ChatRequest],
        on_result: Callable[[int, ChatResult], None] | None = None,
    ) -> list[ChatResult]:
        """Complete every request in batches; `on_result` fires as each answer finishes."""
        results: list[ChatResult | None] = [None] * len(requests)

        def finish(i: int, result: ChatResult) -> None:
            results[i] = result
            if on_result is not None:
                on_result(i, result)

        groups: dict[tuple, list[tuple[int, list[int]]]] = {}
        for i, request in enumerate(requests):
            ids = self._encode(request)
            if isinstance(ids, ChatResult):
                finish(i, ids)
                continue
            seed = request.seed if request.temperature > 0 else None
            key = (request.temperature, seed, request.repetition_penalty)
            groups.setdefault(key, []).append((i, ids))
        for (temperature, seed, penalty), items in groups.items():
            self._run_group(requests, items, temperature, seed, penalty, finish)
        return results  # type: ignore[return-value]

    def _encode(self, request: ChatRequest) -> list[int] | ChatResult:
        from jinja2 import TemplateError

        from lem.decode import encode_chat

        try:
            return encode_chat(self.loaded, request.messages)
        except (TemplateError, ValueError) as e:  # e.g. a template that rejects system turns
            return ChatResult(None, error=one_line(f"chat template failed: {e}"), status="error")

    def _run_group(self, requests, items, temperature, seed, penalty, finish) -> None:
        from lem.decode import Generation, generate_batch

        def done(j: int, gen: Generation) -> None:
            i = items[j][0]
            extra = {"seconds": round(gen.seconds, 3)}
            if requests[i].json_schema is not None:
                extra["json_schema"] = "not enforced (local model)"
            empty = not gen.text.strip()
            finish(
                i,
                ChatResult(
                    text=None if empty else gen.text,
                    finish_reason=gen.finish_reason,
                    error="empty response" if empty else None,
                    prompt_tokens=gen.prompt_tokens,
                    completion_tokens=gen.tokens,
                    extra=extra,
                    status="empty" if empty else "ok",
                ),
            )

        generate_batch(
            self.loaded,
            [ids for _, ids in items],
            max_tokens=[requests[i].max_tokens for i, _ in items],
            temperature=temperature,
            seed=seed,
            batch_size=self.batch_size,
            on_result=done,
            repetition_penalty=penalty,
        )
