"""What one run of ``sprout`` carries: how it answers (``--json`` or not, and where its answer goes) and the
services its command works with, built on first use."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, TextIO

import click

from model.core.settings import get_settings

if TYPE_CHECKING:
    from model.runtime.services import Services


@dataclass(frozen=True)
class Invocation:
    """Made by the app's callback from the global options, and kept in Typer's context for the command."""

    json: bool
    stdout: TextIO  # the real stdout, kept for the JSON answer while the command writes anything else to stderr

    @cached_property
    def services(self) -> Services:
        """The database, object store and registry the settings describe (the schema checked: see ``Services``)."""
        from model.runtime.services import Services

        return Services.from_settings(get_settings())


def invocation() -> Invocation:
    """This run's invocation; outside a command (a test calling a helper), one that answers for a person."""
    ctx = click.get_current_context(silent=True)
    found = ctx.find_object(Invocation) if ctx is not None else None
    return found if found is not None else Invocation(json=False, stdout=sys.stdout)


def services() -> Services:
    """The running command's services."""
    return invocation().services
