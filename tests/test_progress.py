"""Progress lines: answers that finish together are shown together."""

from __future__ import annotations

import io

from lem.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_counted_then_shown_once():
    """A batch whose answers all finish at one decoding step must not print '1/N' with an
    ETA as if the other answers were still to come (the line would stand for a whole
    batch's time)."""
    clock, out = Clock(), io.StringIO()
    p = Progress("m b", 8, stream=out, interval=2.0, clock=clock)
    clock.now = 30.0
    for _ in range(4):
        p.update(1, tokens=10, show=False)
    assert out.getvalue() == ""
    p.show()
    assert out.getvalue().splitlines() == ["m b: 4/8  0.13/s  1.3 tok/s  ETA 30s"]
    clock.now = 60.0
    for _ in range(4):
        p.update(1, tokens=10, show=False)
    p.show()
    assert out.getvalue().splitlines()[-1] == "m b: 8/8  0.13/s  1.3 tok/s  done in 1m00s"


def test_update_shows_at_most_every_interval_and_always_at_the_end():
    clock, out = Clock(), io.StringIO()
    p = Progress("x", 3, stream=out, interval=2.0, clock=clock)
    clock.now = 1.0
    p.update()  # first line: due (nothing printed yet)
    clock.now = 1.5
    p.update()  # within the interval: not printed
    clock.now = 1.6
    p.update()  # the end: printed
    assert [line.split("  ")[0] for line in out.getvalue().splitlines()] == ["x: 1/3", "x: 3/3"]


def test_generate_batch_calls_on_step_after_each_burst(tiny_llama_dir):
    from lem.decode import encode_text, generate_batch
    from lem.models import load_model

    loaded = load_model(tiny_llama_dir)
    prompts = [encode_text(loaded, t) for t in ("one", "two three", "four five six")]
    events: list[object] = []
    results = generate_batch(
        loaded,
        prompts,
        max_tokens=[2, 4, 4],
        on_result=lambda i, g: events.append(i),
        on_step=lambda: events.append("step"),
    )
    assert sorted(e for e in events if e != "step") == [0, 1, 2]
    assert events[-1] == "step"  # every answer is followed by a step
    steps = [k for k, e in enumerate(events) if e == "step"]
    assert all(events[k - 1] != "step" for k in steps)  # only after steps that finished one
    assert [r.tokens for r in results][0] <= 2
