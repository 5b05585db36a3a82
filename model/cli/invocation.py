"""What one run of ``sprout`` carries: how it answers (``--json`` or not, and where its answer goes) and the
services its command works with, built on first use."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, TextIO

from model.core.settings import get_settings

if TYPE_CHECKING:
    from model.runtime.services import Services


@dataclass(frozen=True)
class Invocation:
    """Made by the app's callback from the global options; current while Typer's context runs the command."""

    json: bool
    stdout: TextIO  # the real stdout, kept for the JSON answer while the command writes anything else to stderr

    @cached_property
    def services(self) -> Services:
        """The database, object store and registry the settings describe (the schema checked: see ``Services``)."""
        from model.runtime.services import Services

        return Services.from_settings(get_settings())


_current: ContextVar[Invocation | None] = ContextVar("sprout_invocation", default=None)


@contextmanager
def running(run: Invocation) -> Iterator[Invocation]:
    """Make ``run`` the current invocation inside."""
    token = _current.set(run)
    try:
        yield run
    finally:
        _current.reset(token)


def invocation() -> Invocation:
    """The current invocation; outside a command (a test calling a helper), one that answers for a person."""
    return _current.get() or Invocation(json=False, stdout=sys.stdout)


def services() -> Services:
    """The running command's services."""
    return invocation().services
