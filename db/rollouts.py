"""Queries of rollouts: the open one, its start and end (compare-and-set), and its live observations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from db import queries
from db.models import (
    Rollout,
    RolloutMode,
    RolloutObservation,
    RolloutOutcome,
    Sample,
    SampleStatus,
    utcnow,
)

OBSERVATIONS_LOCK = 0x53505252  # advisory-lock key of the observation writers ("SPRR")


def open_rollout(session: Session) -> Rollout | None:
    """The rollout in progress, if any (at most one: a unique index on ``open``)."""
    return session.scalars(select(Rollout).where(Rollout.open.is_(True))).first()


def start_rollout(session: Session, *, challenger_version: str, champion_version: str | None, mode: RolloutMode,
                  started_by: str, run_id: int | None = None) -> Rollout:
    """Add an open rollout (the caller commits; IntegrityError at the flush when another is open)."""
    row = Rollout(challenger_version=challenger_version, champion_version=champion_version, mode=mode,
                  started_by=started_by, run_id=run_id, open=True)
    session.add(row)
    session.flush()
    return row


def end_rollout(session: Session, rollout_id: int, *, outcome: RolloutOutcome, reason: str,
                decided_by: str) -> bool:
    """Close the rollout if it is still open (compare-and-set: two judges, or a judge and an admin, racing end it
    once); True when this call ended it. The caller commits."""
    ended = session.execute(
        update(Rollout).where(Rollout.id == rollout_id, Rollout.open.is_(True))
        .values(open=None, ended_at=utcnow(), outcome=outcome, reason=reason[:2000], decided_by=decided_by)
        .execution_options(synchronize_session=False))
    return bool(getattr(ended, "rowcount", 0) == 1)


def rollout_of_run(session: Session, run_id: int) -> Rollout | None:
    """The rollout a training run started, if any (a retried promotion finds it, however long ago)."""
    return session.scalars(select(Rollout).where(Rollout.run_id == run_id).order_by(Rollout.id.desc())).first()


def recent_rollouts(session: Session, *, limit: int = 10) -> list[Rollout]:
    """The latest rollouts, newest first."""
    return list(session.scalars(select(Rollout).order_by(Rollout.id.desc()).limit(limit)))


def add_observations(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert observations (dicts of RolloutObservation's columns) in one statement; the caller commits."""
    if rows:
        session.execute(insert(RolloutObservation), list(rows))


def count_observations(session: Session, rollout_id: int) -> int:
    return int(session.scalar(select(func.count()).select_from(RolloutObservation)
                              .where(RolloutObservation.rollout_id == rollout_id)) or 0)


def room_for_observations(session: Session, rollout_id: int, cap: int) -> int:
    """How many more observations the rollout may keep under ``cap``: counted under an advisory lock that the
    session holds until its transaction ends (PostgreSQL), so the writers of every API process, each counting and
    inserting in one transaction, stay within the cap together (SQLite serialises its writers anyway)."""
    queries.hold_lock(session, key=OBSERVATIONS_LOCK)
    return max(0, cap - count_observations(session, rollout_id))


def labelled_observations(session: Session, rollout_id: int) -> list[tuple[RolloutObservation, str | None]]:
    """Every observation of the rollout with the reviewer's label of its image — approved since the rollout
    started: its label; not reviewed yet, rejected, never submitted, or approved before (a training image, or one
    anybody could send again to make "reviewed" pairs at will): None —, oldest first."""
    started = select(Rollout.started_at).where(Rollout.id == rollout_id).scalar_subquery()
    reviewed = (select(Sample.sha256, Sample.label)
                .where(Sample.status == SampleStatus.APPROVED, Sample.approved_at >= started).subquery())
    query = (select(RolloutObservation, reviewed.c.label)
             .outerjoin(reviewed, reviewed.c.sha256 == RolloutObservation.sha256)
             .where(RolloutObservation.rollout_id == rollout_id).order_by(RolloutObservation.id))
    return [(obs, label) for obs, label in session.execute(query)]


def decision_counts(session: Session, *, rule: str) -> dict[tuple[RolloutOutcome, bool], int]:
    """Ended rollouts by (outcome, decided by ``rule`` — the automatic rule's ``decided_by`` — rather than a
    person)."""
    by_rule = Rollout.decided_by == rule
    query = (select(Rollout.outcome, by_rule, func.count()).where(Rollout.outcome.is_not(None))
             .group_by(Rollout.outcome, by_rule))
    return {(outcome, bool(ruled)): int(n) for outcome, ruled, n in session.execute(query) if outcome is not None}


def evidence_version(session: Session, rollout_id: int) -> tuple[int | None, Any]:
    """What the rollout's live evidence depends on, cheaply: its newest observation and the latest review of any
    sample (the pairs' labels); unchanged, the evidence is unchanged."""
    newest = session.scalar(select(func.max(RolloutObservation.id)).where(RolloutObservation.rollout_id == rollout_id))
    return newest, session.scalar(select(func.max(Sample.updated_at)))
