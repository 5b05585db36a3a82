"""Start and end rollouts: the ``challenger`` alias, the ``rollouts`` row and, on promotion, the champion.

A rollout starts when a candidate clears the gate with ``SPROUT_ROLLOUT`` shadow or canary (``promote_run``), or
when an admin puts any registered Sprout version in front of live traffic (``sprout rollout start``, the admin
route). It ends once: promoted (the challenger becomes the champion, audited as a champion change) or aborted (the
alias is removed; the champion is untouched) — by the rule (``sprout rollout judge``) or a person. Ending is a
compare-and-set on the open row, so two judges, or a judge and an admin, never both act.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from db import queries, rollouts
from db.models import ChampionChangeKind, Rollout, RolloutMode, RolloutOutcome, TrainingRun
from model.core.errors import ArtifactRejectedError, ConflictError, NotFoundError
from model.runtime import webhooks
from model.runtime.services import Services

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RolloutEnd:
    """How a rollout ended: its row after the decision, and the champion before and after."""

    rollout: Rollout
    previous_champion: str | None
    champion: str | None


def start(svc: Services, version: str, *, mode: RolloutMode, started_by: str, run_id: int | None = None) -> Rollout:
    """Make ``version`` the challenger in ``mode``: it must be a version a Sprout run registered, with the artifact
    that run logged (else ConflictError), other than the champion, and no rollout may be open (ConflictError)."""
    info = svc.registry.version_info(version)  # NotFoundError for an unknown version
    champion = svc.registry.champion()
    if champion is not None and champion.version == info.version:
        raise ConflictError(f"Version {info.version} is the champion already: nothing to roll out.")
    _, path = svc.registry.model_file(info.version)
    try:
        svc.verify_artifact(info.version, path)
    except ArtifactRejectedError as exc:
        raise ConflictError(f"Version {info.version} cannot be rolled out: {exc}") from exc
    with svc.session() as session:
        current = rollouts.open_rollout(session)
        if current is not None:
            raise ConflictError(_busy(current))
        try:
            row = rollouts.start_rollout(session, challenger_version=info.version,
                                         champion_version=champion.version if champion else None, mode=mode,
                                         started_by=started_by, run_id=run_id)
            session.commit()
        except IntegrityError:  # another start won the race for the one open rollout
            session.rollback()
            raise ConflictError(_busy(rollouts.open_rollout(session))) from None
        try:
            svc.registry.set_challenger(info.version)
        except Exception as exc:  # no replica would load it: close the row rather than block every later start
            rollouts.end_rollout(session, row.id, outcome=RolloutOutcome.ABORTED, decided_by=started_by,
                                 reason=f"Abort: the registry could not point the challenger alias at it ({exc}).")
            session.commit()
            raise
        session.refresh(row)
        log.info("rollout %s: version %s is the challenger (%s), started by %s", row.id, info.version, mode.value,
                 started_by)
        return row


def event(row: Rollout) -> dict[str, Any]:
    """A rollout as its webhooks and logs tell it."""
    return {"rollout_id": row.id, "challenger": row.challenger_version, "champion": row.champion_version,
            "mode": row.mode.value, "started_by": row.started_by, "outcome": row.outcome.value if row.outcome else None,
            "reason": row.reason, "decided_by": row.decided_by}


def _busy(current: Rollout | None) -> str:
    if current is None:
        return "Another rollout was started at the same moment."
    return (f"Rollout {current.id} (version {current.challenger_version}, {current.mode.value}) is still open: "
            "promote or abort it first.")


def end(svc: Services, outcome: RolloutOutcome, *, reason: str, decided_by: str,
        rollout_id: int | None = None) -> RolloutEnd:
    """End the open rollout (or ``rollout_id``, which must be the open one): promote its challenger to champion,
    or abort it. ConflictError when none is open or another decision ended it first."""
    with svc.session() as session:
        row = rollouts.open_rollout(session)
        if row is None or (rollout_id is not None and row.id != rollout_id):
            raise NotFoundError("No rollout is open." if row is None else
                                f"Rollout {rollout_id} is not the open one (rollout {row.id} is).")
        previous = svc.registry.champion()
        previous_version = previous.version if previous else None
        if previous_version == row.challenger_version:  # a promotion moved the alias, then died before its record
            previous_version = row.champion_version
        elif outcome is RolloutOutcome.PROMOTED and previous_version != row.champion_version:
            raise ConflictError(
                f"The champion changed during rollout {row.id} (v{row.champion_version} then, v{previous_version} "
                "now): its live evidence compared the challenger with another model. Abort it and start a new "
                "rollout.")
        if not rollouts.end_rollout(session, row.id, outcome=outcome, reason=reason, decided_by=decided_by):
            session.rollback()
            raise ConflictError(f"Rollout {row.id} was decided by someone else meanwhile.")
        change = None
        if outcome is RolloutOutcome.PROMOTED:
            svc.registry.set_champion(row.challenger_version)
            try:
                change = queries.record_champion_change(session, kind=ChampionChangeKind.PROMOTED_BY_ROLLOUT,
                                                        version=row.challenger_version, previous=previous_version,
                                                        changed_by=decided_by, run_id=row.run_id)
                trained = session.get(TrainingRun, row.run_id) if row.run_id is not None else None
                if trained is not None:  # the run's model serves now: reports, novelty and dedup follow it
                    trained.promoted = True
                session.commit()
            except Exception:  # not recorded: the alias goes back, so what serves is what the database says
                session.rollback()
                if previous_version is not None:
                    svc.registry.set_champion(previous_version)
                raise
        else:
            session.commit()
        try:
            svc.registry.clear_challenger()
        except Exception as exc:  # the decision is recorded; replicas drop the challenger once the row is closed
            log.warning("rollout %s: could not remove the challenger alias (%s)", row.id, exc)
        if change is not None:
            webhooks.champion_changed(svc.settings, change)
        session.refresh(row)
        champion = row.challenger_version if outcome is RolloutOutcome.PROMOTED else previous_version
        log.info("rollout %s %s by %s: %s", row.id, outcome.value, decided_by, reason)
        return RolloutEnd(rollout=row, previous_champion=previous_version, champion=champion)
