"""The condensed kernel for CPU demos (`lem/data/kernel-brief`)."""

from __future__ import annotations

from lem.generate import teacher_messages
from lem.kernel import default_kernel_dir, load_kernel

AXIOM_NAMES = ["Sovereignty", "Privacy", "Transparency", "Consent", "Dignity"]


def brief_dir():
    return default_kernel_dir().parent / "kernel-brief"


def test_brief_kernel_loads_with_the_right_length():
    kernel = load_kernel(brief_dir())
    assert 1800 <= len(kernel.text) <= 2500
    assert [a.name for a in kernel.axioms] == AXIOM_NAMES


def test_brief_kernel_names_all_five_axioms_and_the_conflict_order():
    text = load_kernel(brief_dir()).text
    for name in AXIOM_NAMES:
        assert f"**{name}.**" in text, name
    for step in ("Honesty is the floor", "not in the room", "least personal data"):
        assert step in text, step


def test_brief_axioms_are_the_full_ones_cut_down():
    brief, full = load_kernel(brief_dir()), load_kernel()
    for short, long in zip(brief.axioms, full.axioms, strict=True):
        assert (short.id, short.name, short.statement) == (long.id, long.name, long.statement)
        assert short.guidance == long.guidance[:1] and not short.examples
    assert brief.resolution == full.resolution


def test_brief_teacher_prompt_is_much_shorter_than_the_full_one():
    prompt = "How much paracetamol is too much in one day?"
    sizes = [
        sum(len(m["content"]) for m in teacher_messages(k, prompt, None, 192))
        for k in (load_kernel(brief_dir()), load_kernel())
    ]
    assert sizes[0] < 0.5 * sizes[1], sizes
