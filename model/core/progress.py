"""Progress of long steps (embedding, exporting), reported to whoever listens: the CLI's progress bar on a
terminal. Nobody listening (the API, a piped CLI, ``--json``): reporting costs nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

Advance = Callable[[int], None]
Reporter = Callable[[str, int], Advance]  # (what, total) → advance(done)

_reporter: ContextVar[Reporter | None] = ContextVar("sprout_progress", default=None)


@contextmanager
def reporting(reporter: Reporter | None) -> Iterator[None]:
    """Send the progress of the steps run inside to ``reporter`` (None: to nobody)."""
    token = _reporter.set(reporter)
    try:
        yield
    finally:
        _reporter.reset(token)


def step(what: str, total: int) -> Advance:
    """Start a step of ``total`` units; call the answer with the units done since the last call."""
    reporter = _reporter.get()
    return reporter(what, total) if reporter is not None and total > 0 else _ignore


def _ignore(_done: int) -> None:
    return None
