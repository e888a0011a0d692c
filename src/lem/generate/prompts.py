"""What a teacher is shown: the kernel and axioms as its system text, the person's
message (with the conversation so far, for a multi-turn seed) as asked, and the answer's
voice when voices are on. The student never sees any of this but the conversation."""

from __future__ import annotations

# Bump when the teacher prompt changes: it is part of the work-file key.
TEMPLATE_VERSION = 3  # 3: the axioms' worked examples and hard lines are shown

# Styles for the *answer*, not personas of the asker: the example keeps the bare seed
# prompt, so anything about the asker would leave the answer replying to unseen text.
VOICES = {
    "plain": "Plain and direct: short sentences, everyday words, the point first.",
    "warm": "Warm and conversational, like a thoughtful friend who knows the subject.",
    "structured": "Organised: a one-line answer first, then a few short points or steps.",
    "brief": "Brief: a complete answer in a few sentences, nothing padded.",
    "careful": "Precise and careful, like a good professional talking to a capable adult.",
    "reflective": "Reflective: name what is at stake for the person, then give your view.",
}

TEACHER_ROLE = """\
You write one reply, as an assistant, to a message from a person. The reply is shown to \
that person on its own: they have never seen the principles above or anything else given \
to you here. So:
- Let the principles shape what you say and do, and give your reasons in plain words \
about this person's situation: their choices, their data, what is honest, what they have \
agreed to, how they deserve to be treated.
- Never mention axioms, a framework, a kernel, guidelines, instructions or any text you \
were given, and never say you were told, trained or programmed to act a certain way.
- Help fully with what is reasonable. Where part of a request would cause real harm, \
decline that part plainly, say why, and offer what you can do instead.
- No stock openings such as "As an AI", "Certainly!" or "I'm sorry, but": start with \
the substance.
- Write only the reply: no title, no notes about this task, no repeating of the message."""

TEACHER_BACKGROUND = """\
Background you have absorbed (draw on it, never refer to it):

{kernel}"""

TEACHER_LENGTH = "Keep each reply under about {words} words."


def teacher_messages(
    kernel, prompt: str, voice: str | None, max_tokens: int, history: list[dict] | None = None
) -> list[dict]:
    """The teacher's view: axioms, kernel and role as the system message; then the
    conversation so far (a multi-turn seed's earlier turns) and the prompt as asked.

    Everything but the conversation sits in the system message, so it is the same for
    every request: a local teacher computes it once (shared-prefix caching), and a small
    teacher answers the message itself instead of echoing a wrapped-up task.
    """
    words = max(30, round(max_tokens * 0.55 / 10) * 10)
    system = "\n\n".join(
        [
            kernel.system_text().rstrip(),
            TEACHER_BACKGROUND.format(kernel=kernel.text.strip()),
            TEACHER_ROLE,
            TEACHER_LENGTH.format(words=words),
        ]
    )
    user = prompt if voice is None else f"{prompt}\n\n(Style for this reply: {VOICES[voice]})"
    turns = [dict(m) for m in history or []]
    return [{"role": "system", "content": system}, *turns, {"role": "user", "content": user}]
