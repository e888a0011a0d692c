"""A terminal chat with a model, optionally with the ethical kernel as system context."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lem.decode import encode_chat
from lem.errors import LemError
from lem.models import LoadedModel


def kernel_system_text(kernel_dir: str | Path) -> str:
    """The kernel prose and its axioms, as one system message."""
    from lem.kernel import load_kernel

    kernel = load_kernel(kernel_dir)
    return f"{kernel.text.strip()}\n\n{kernel.system_text().strip()}"


@dataclass
class ChatSession:
    """A conversation with a loaded model; `ask` streams the answer's text pieces."""

    loaded: LoadedModel
    system: str | None = None
    max_tokens: int = 512
    temperature: float = 0.0
    history: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.loaded.is_chat:
            raise LemError(
                f"{self.loaded.path}: this model has no chat template; "
                "lem chat needs an instruction-tuned model"
            )

    def messages(self) -> list[dict]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + self.history

    def ask(self, text: str) -> Iterator[str]:
        """Add a user turn and yield the reply as it is generated; the reply joins the history."""
        from mlx_lm import stream_generate
        from mlx_lm.sample_utils import make_sampler

        self.history.append({"role": "user", "content": text})
        prompt = encode_chat(self.loaded, self.messages())
        pieces = []
        for response in stream_generate(
            self.loaded.model,
            self.loaded.tokenizer,
            prompt,
            max_tokens=self.max_tokens,
            sampler=make_sampler(temp=self.temperature),
        ):
            pieces.append(response.text)
            yield response.text
        self.history.append({"role": "assistant", "content": "".join(pieces)})

    def reset(self) -> None:
        self.history.clear()


def repl(session: ChatSession, read: Callable[[], str], write: Callable[[str], None]) -> None:
    """Read-eval-print loop: /reset clears the history, /exit (or end of input) stops."""
    while True:
        try:
            line = read()
        except EOFError:
            return
        text = line.strip()
        if not text:
            continue
        if text in ("/exit", "/quit"):
            return
        if text == "/reset":
            session.reset()
            write("(history cleared)\n")
            continue
        for piece in session.ask(text):
            write(piece)
        write("\n")
