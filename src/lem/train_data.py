"""Training data for `lem train`: read and check chat JSONL, tokenize, and batch.

Everything a user can get wrong is checked here before any training starts, with one
line naming the file and line. Batches are a pure function of (seed, step), so a run
resumed from a checkpoint sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lem.errors import LemError
from lem.store import iter_jsonl

ROLES = {"system", "user", "assistant", "tool"}
PAD_TO = 32  # pad batch lengths to a multiple of this: fewer shapes, fewer recompiles
SHOWN = 5  # offending examples named in an error message


@dataclass
class ChatRow:
    """One line of a training file: its chat and where it came from."""

    line: int
    id: str | None
    row: dict


@dataclass
class Example:
    """A tokenized chat and which of its tokens are trained (`mask`): with prompt masking,
    every assistant turn, its end-of-turn tokens included; otherwise all of them."""

    tokens: list[int]
    mask: list[bool]
    line: int
    id: str | None

    @property
    def offset(self) -> int:
        """The first trained token (the whole prompt before it is masked from the loss)."""
        return self.mask.index(True) if True in self.mask else len(self.tokens)

    @property
    def trained(self) -> int:
        return sum(self.mask)


def _message_problem(messages: Any) -> str | None:
    if not isinstance(messages, list) or not messages:
        return "`messages` must be a non-empty list of {role, content} objects"
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            return f"messages[{i}] must be an object with a string `content`"
        if m.get("role") not in ROLES:
            return f"messages[{i}] has role {m.get('role')!r}; expected one of {sorted(ROLES)}"
    if messages[-1]["role"] != "assistant":
        return "the last message must be the assistant's answer (that is what is trained)"
    return None


def read_chat_file(path: Path) -> list[ChatRow]:
    """Read a chat JSONL file, checking every `messages`; one-line error at the first bad line."""
    rows = []
    for line, obj in iter_jsonl(path):
        problem = _message_problem(obj.get("messages"))
        if problem:
            raise LemError(f"{path}:{line}: {problem}")
        rid = obj.get("id")
        rows.append(ChatRow(line, None if rid is None else str(rid), obj))
    return rows


def read_splits(data: Path, batch_size: int) -> dict[str, list[ChatRow]]:
    """`train` and `valid` rows from a data directory, each with at least one full batch."""
    data = Path(data)
    if not data.is_dir():
        raise LemError(f"{data}: training data directory not found (--data)")
    splits = {}
    for name in ("train", "valid"):
        path = data / f"{name}.jsonl"
        if not path.is_file():
            raise LemError(
                f"{path}: missing; a data directory needs train.jsonl and valid.jsonl "
                "(make them with `lem generate`)"
            )
        rows = read_chat_file(path)
        if len(rows) < batch_size:
            raise LemError(
                f"{path}: {len(rows)} example(s), fewer than batch_size {batch_size}; "
                "add examples or lower --batch-size"
            )
        splits[name] = rows
    return splits


def _label(ex: Example | ChatRow) -> str:
    return f"line {ex.line}" + (f" (id {ex.id})" if ex.id is not None else "")


def _template(tokenizer: Any, messages: list[dict], prompt: bool) -> list[int]:
    return list(
        tokenizer.apply_chat_template(messages, add_generation_prompt=prompt, tokenize=True)
    )


def assistant_mask(
    tokenizer: Any, messages: list[dict], where: str
) -> tuple[list[int], list[bool]]:
    """A chat's tokens (the model's chat template) and which belong to assistant turns.

    Each assistant turn spans from the end of the conversation before it (with the
    generation prompt) to the end of the conversation including it. This needs a
    template whose encoding of a conversation starts with its encoding of every earlier
    part, as chat templates do; one that does not is an error naming the example.
    """
    tokens = _template(tokenizer, messages, prompt=False)
    mask = [False] * len(tokens)
    for i, message in enumerate(messages):
        if message["role"] != "assistant" or message.get("train") is False:
            continue  # an assistant turn marked "train": false is context only
        start = len(_template(tokenizer, messages[:i], prompt=True))
        upto = _template(tokenizer, messages[: i + 1], prompt=False)
        if tokens[: len(upto)] != upto or start > len(upto):
            raise LemError(
                f"{where}: the model's chat template encodes earlier turns differently inside "
                "the whole conversation, so assistant turns cannot be located; train with "
                "--no-mask-prompt, or with single-turn examples"
            )
        mask[start : len(upto)] = [True] * (len(upto) - start)
    return tokens, mask


def tokenize(
    rows: Sequence[ChatRow],
    tokenizer: Any,
    mask_prompt: bool,
    max_seq_length: int,
    truncate: bool,
    path: Path,
) -> list[Example]:
    """Tokenize chats with the model's chat template; error on examples over `max_seq_length`.

    With `mask_prompt`, only assistant turns are trained (all of them, so a multi-turn
    example teaches every answer in it); without, every token. With `truncate`, long
    examples are cut to the limit (as mlx-lm does) unless no trained token would be left.
    """
    examples = []
    for r in rows:
        messages = r.row["messages"]
        if mask_prompt:
            tokens, mask = assistant_mask(tokenizer, messages, f"{path}:{r.line}")
        else:
            tokens = _template(tokenizer, messages, prompt=False)
            mask = [False] + [True] * (len(tokens) - 1)
        examples.append(Example(tokens, mask, r.line, r.id))
    long = [e for e in examples if len(e.tokens) > max_seq_length]
    if long and not truncate:
        named = ", ".join(f"{_label(e)}: {len(e.tokens)} tokens" for e in long[:SHOWN])
        more = f" and {len(long) - SHOWN} more" if len(long) > SHOWN else ""
        raise LemError(
            f"{path}: {len(long)} example(s) longer than max_seq_length {max_seq_length} "
            f"tokens ({named}{more}); shorten them, raise --max-seq-length, "
            "or pass --truncate to cut them"
        )
    empty = [e for e in long if not any(e.mask[1:max_seq_length])]
    if empty:
        raise LemError(
            f"{path}: {len(empty)} example(s) whose prompt alone fills max_seq_length "
            f"{max_seq_length} ({', '.join(_label(e) for e in empty[:SHOWN])}); "
            "truncating would leave no answer to train: raise --max-seq-length"
        )
    return examples


def epoch_batches(
    lengths: Sequence[int], batch_size: int, seed: int, epoch: int
) -> list[list[int]]:
    """One epoch's batches (lists of example indices), in training order.

    Like mlx-lm, batches group examples of similar length; unlike it, the examples left
    over when the count is not a multiple of the batch size are drawn at random each
    epoch, so the longest ones are not always the ones dropped.
    """
    rng = np.random.default_rng([seed, epoch])
    n = len(lengths)
    kept = rng.permutation(n)[: n - n % batch_size]
    kept = sorted(kept.tolist(), key=lambda i: (lengths[i], i))
    groups = [kept[i : i + batch_size] for i in range(0, len(kept), batch_size)]
    return [groups[i] for i in rng.permutation(len(groups))]


class BatchPlan:
    """The batch for any global step: epoch = step // batches_per_epoch, fixed by the seed."""

    def __init__(self, examples: Sequence[Example], batch_size: int, seed: int):
        self.examples = examples
        self.batch_size = batch_size
        self.seed = seed
        self.per_epoch = len(examples) // batch_size
        self._lengths = [len(e.tokens) for e in examples]
        self._epoch: tuple[int, list[list[int]]] | None = None

    def indices(self, step: int) -> list[int]:
        """Example indices of the batch trained at `step` (0-based)."""
        epoch, position = divmod(step, self.per_epoch)
        if self._epoch is None or self._epoch[0] != epoch:
            self._epoch = (epoch, epoch_batches(self._lengths, self.batch_size, self.seed, epoch))
        return self._epoch[1][position]


def collate(examples: Sequence[Example], max_seq_length: int) -> tuple[Any, Any]:
    """Pad a batch (lengths rounded up to PAD_TO + 1, capped at `max_seq_length`):
    (tokens, trained) where trained[b, t] is 1.0 for a trained token, 0.0 for the rest
    (prompt, other turns, padding)."""
    import mlx.core as mx

    lengths = [min(len(e.tokens), max_seq_length) for e in examples]
    width = min(1 + PAD_TO * ((max(lengths) + PAD_TO - 1) // PAD_TO), max_seq_length)
    batch = np.zeros((len(examples), width), np.int32)
    trained = np.zeros((len(examples), width), np.float32)
    for row, (e, n) in enumerate(zip(examples, lengths, strict=True)):
        batch[row, :n] = e.tokens[:n]
        trained[row, :n] = e.mask[:n]
    return mx.array(batch), mx.array(trained)


def validation_batches(
    examples: Sequence[Example], batch_size: int, seed: int, limit: int
) -> list[list[int]]:
    """Fixed validation batches, the same at every evaluation; `limit` -1 means all.

    Every example is used (the last batch may be smaller), in a seeded order, so a
    `limit` takes a sample across lengths rather than the shortest examples.
    """
    order = sorted(range(len(examples)), key=lambda i: (len(examples[i].tokens), i))
    groups = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    groups = [groups[i] for i in np.random.default_rng(seed).permutation(len(groups))]
    return groups if limit == -1 else groups[:limit]
