"""`lem chat`."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
@click.argument("model")
@click.option("--adapter", type=click.Path(path_type=Path), help="LoRA adapter directory.")
@click.option(
    "--kernel",
    "kernel_dir",
    type=click.Path(path_type=Path),
    help="Put this kernel (kernel.md + axioms.json) in context as the system message.",
)
@click.option("--prompt", "-p", help="Ask one question, print the answer, and exit.")
@click.option("--max-tokens", default=512, show_default=True, type=click.IntRange(min=1))
@click.option("--temperature", default=0.0, show_default=True, type=click.FloatRange(min=0))
def chat(
    model: str,
    adapter: Path | None,
    kernel_dir: Path | None,
    prompt: str | None,
    max_tokens: int,
    temperature: float,
) -> None:
    """Talk to MODEL (a directory, hub id, or `mlx/...`), streaming the answer.

    \b
    In the chat: /reset clears the history, /exit or Ctrl-D quits.
    Example:  lem chat "$(lem model fetch)" -p "What is the capital of France?"
    """
    from lem.chat import ChatSession, kernel_system_text, repl
    from lem.models import load_model

    system = kernel_system_text(kernel_dir) if kernel_dir is not None else None
    session = ChatSession(load_model(model, adapter=adapter), system, max_tokens, temperature)

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    if prompt is not None:
        for piece in session.ask(prompt):
            write(piece)
        write("\n")
        return
    interactive = sys.stdin.isatty()
    if interactive:
        click.echo(
            f"Chatting with {session.loaded.path.name}. /reset clears, /exit quits.", err=True
        )

    def read() -> str:
        if interactive:
            return input("> ")
        line = sys.stdin.readline()
        if not line:
            raise EOFError
        return line

    repl(session, read, write)
