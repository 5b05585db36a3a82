"""Rollout commands (``sprout rollout``): a challenger judged on live traffic — its status, the rule's judgement
(the ``sprout_rollout`` DAG runs it), and a person's start, promotion or abort (as the admin named by ``--by``:
the audit records the name)."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from model.cli.invocation import services
from model.cli.output import command, emit, err

if TYPE_CHECKING:
    from model.rollout.judge import RolloutReport



class Mode(StrEnum):
    """How a challenger meets live traffic (db.models.RolloutMode, without importing the database here)."""

    SHADOW = "shadow"  # scores a share of requests beside the champion; the champion answers
    CANARY = "canary"  # answers a share of clients


rollout_app = typer.Typer(help="Rollouts: a challenger in shadow or canary, judged on live traffic.",
                          no_args_is_help=True)
AdminOpt = Annotated[str, typer.Option("--by", help="Your admin account (recorded in the audit).")]
ReasonOpt = Annotated[str | None, typer.Option("--reason", help="Why (recorded with the decision).")]


def _line(d: dict[str, Any]) -> None:
    state = "open" if d["open"] else f"{d['outcome']} by {d['decided_by']}"
    err.print(f"rollout {d['id']}: v{d['challenger']} against v{d['champion']} ({d['mode']}, started by "
              f"{d['started_by']}) — {state}")
    err.print(f"  {d['summary']}")
    if d.get("decision"):
        err.print(f"  the rule now: {d['decision']['action']} — {d['decision']['reason']}")
    elif d.get("reason"):
        err.print(f"  {d['reason']}")


def _emit(made: RolloutReport | None) -> None:
    if made is None:
        emit({"rollout": None}, lambda _d: err.print("no rollout is open"))
    else:
        emit(made.to_dict(), _line)


def _admin(by: str) -> None:
    from model.review.taxonomy import check_admin

    with services().session() as session:
        check_admin(session, by)


@rollout_app.command("status")
def rollout_status() -> None:
    """The latest rollouts, newest first: challenger, mode, live comparison, and the rule's decision."""
    from model.rollout.judge import status

    with command():
        reports = [r.to_dict() for r in status(services())]

        def human(d: dict[str, Any]) -> None:
            if not d["rollouts"]:
                err.print("no rollouts yet")
            for row in d["rollouts"]:
                _line(row)

        emit({"rollouts": reports}, human)


@rollout_app.command("judge")
def rollout_judge() -> None:
    """Judge the open rollout by the rule and act on it: promote, abort, or wait (nothing to do without one)."""
    from model.rollout.judge import judge

    with command():
        _emit(judge(services()))


@rollout_app.command("start")
def rollout_start(version: Annotated[str, typer.Argument(help="A registered version (a Sprout run's).")],
                  by: AdminOpt,
                  mode: Annotated[Mode, typer.Option("--mode", help="How it meets live traffic.")] = Mode.SHADOW,
                  ) -> None:
    """Put a registered version in front of live traffic as the challenger (none may be open)."""
    from db.models import RolloutMode
    from model.rollout.judge import begin

    with command():
        _admin(by)
        _emit(begin(services(), version, mode=RolloutMode(mode.value), by=by))


@rollout_app.command("promote")
def rollout_promote(by: AdminOpt, reason: ReasonOpt = None) -> None:
    """Promote the open rollout's challenger to champion now, whatever the rule says."""
    _override("promoted", by, reason)


@rollout_app.command("abort")
def rollout_abort(by: AdminOpt, reason: ReasonOpt = None) -> None:
    """Abort the open rollout: the challenger is discarded, the champion stays."""
    _override("aborted", by, reason)


def _override(outcome: str, by: str, reason: str | None) -> None:
    from db.models import RolloutOutcome
    from model.rollout.judge import override

    with command():
        _admin(by)
        _emit(override(services(), RolloutOutcome(outcome), by=by, reason=reason))
