"""How a command answers: with ``--json`` exactly one JSON object on stdout, else lines for a person on stderr;
Sprout's errors as a message and exit code 1; progress bars on a terminal."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from db.migrate import SchemaOutOfDateError
from model.cli.invocation import invocation
from model.core.errors import SproutError
from model.core.progress import Advance, reporting

T = TypeVar("T")

err = Console(stderr=True)

# Exit codes: 0 ok, 1 a failure (a Sprout error, with its message), 2 a usage error (Typer's), and:
EXIT_GATE_REFUSED = 3  # `sprout train` trained a candidate and the gate refused it (nothing was promoted)


@contextlib.contextmanager
def command() -> Iterator[None]:
    """Keep stdout clean for the JSON answer and turn Sprout errors into a message and exit code 1."""
    answer = invocation()
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    except (SproutError, SchemaOutOfDateError) as exc:
        if answer.json:
            answer.stdout.write(json.dumps({"error": str(exc), "type": type(exc).__name__}) + "\n")
            answer.stdout.flush()
        else:
            err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None


def _json_default(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def emit(data: dict[str, Any], human: Callable[[dict[str, Any]], None]) -> None:
    """The command's answer: ``data`` as one JSON line on stdout with ``--json``, else ``human(data)``."""
    answer = invocation()
    if answer.json:
        answer.stdout.write(json.dumps(data, default=_json_default) + "\n")
        answer.stdout.flush()
    else:
        human(data)


def print_pairs(data: dict[str, Any]) -> None:
    """``key: value`` lines (nested values as JSON)."""
    console = Console()
    for key, value in data.items():
        shown = json.dumps(value, default=str) if isinstance(value, dict | list) else value
        console.print(f"[bold]{key}[/bold]: {shown}")


def bars_shown() -> bool:
    """Progress bars only on a terminal, never with --json."""
    return sys.stderr.isatty() and not invocation().json


class Bars(Progress):
    """The progress display: bars on stderr, shown only when ``bars_shown``.

    While entered, each long step the domain reports (``model.core.progress.step``) gets a bar of its own, and
    ``step`` or ``iterate`` feed the command's own bar, named ``what``.
    """

    def __init__(self, what: str = "") -> None:
        super().__init__(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                         console=err, disable=not bars_shown())
        self.what = what
        self._listening = contextlib.ExitStack()

    def __enter__(self) -> Bars:
        super().__enter__()
        if not self.disable:  # nobody listening: the domain's steps cost nothing
            self._listening.enter_context(reporting(self._start))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._listening.close()
        super().__exit__(exc_type, exc, tb)

    def _start(self, what: str, total: int) -> Advance:
        task = self.add_task(what, total=total)
        return lambda done: self.advance(task, done)

    def step(self, total: int) -> Advance:
        """The command's own bar of ``total`` units; call the answer with the units done since the last call."""
        return self._start(self.what, total)

    def iterate(self, items: Iterable[T], total: int) -> Iterable[T]:
        """``items`` (``total`` of them), advancing the command's own bar as they are consumed."""
        return self.track(items, total=total, description=self.what)
