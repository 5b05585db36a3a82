"""Progress steps (model/core/progress.py): reported to a listener only."""

from __future__ import annotations

from model.core.progress import reporting, step


def test_steps_report_only_to_a_listener() -> None:
    seen: list[tuple[str, int, int]] = []
    step("nobody listens", 3)(3)  # no reporter: nothing happens
    with reporting(lambda what, total: lambda done: seen.append((what, total, done))):
        advance = step("embedding", 5)
        advance(2)
        advance(3)
        step("empty", 0)(0)  # nothing to do: not reported
    assert seen == [("embedding", 5, 2), ("embedding", 5, 3)]
