"""A reviewer takes back their own latest decision for a short while: the sample is pending again.

An undo is an audited reversal (a ``reviews`` row with action ``undo``) and a compare-and-set on the exact state
the decision left, so an admin's relabel, a taxonomy change or another undo in between makes it a ConflictError
that changes nothing. The object moves back to the pending key crash-safely (copy → commit → delete).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from db import queries
from db.models import Review, ReviewAction, Sample, SampleStatus, utcnow
from model.core.errors import ConflictError, ForbiddenError
from model.data.samples import ext_of_key, get_sample, key_for
from model.data.storage import ObjectStore
from model.review.actions import commit_move

DECISIONS = (ReviewAction.APPROVE, ReviewAction.CORRECT, ReviewAction.REJECT)
"""A reviewer's own decisions on a pending sample: the ones an undo takes back."""

_LATER = "an admin can relabel it or send it back"


@dataclass(frozen=True)
class RecentReview:
    """One of a reviewer's decisions; ``undoable_until`` is set while ``undoable``."""

    sample_id: int
    action: ReviewAction
    old_label: str | None
    new_label: str | None
    created_at: datetime
    undoable: bool
    undoable_until: datetime | None


def undo_review(session: Session, store: ObjectStore, *, sample_id: int, reviewer: str, undo_seconds: int,
                now: datetime | None = None) -> Sample:
    """Take back ``reviewer``'s latest decision on a sample within ``undo_seconds`` of it: pending again.

    The decision must be the sample's newest audit row (ConflictError otherwise: nothing to undo) and the
    caller's own (ForbiddenError). The sample gets no label, approval or reviewer; its prediction and the
    submitter's suggestion stay. An approval a finished training run already used stays in that run's lineage
    (the model version trained on it); the next run leaves it out unless it is approved again.
    """
    now = _aware(now or utcnow())
    sample = get_sample(session, sample_id)
    decision = queries.latest_review(session, sample_id=sample_id)
    if decision is None or decision.action not in DECISIONS:
        raise ConflictError(_nothing_to_undo(sample_id, decision))
    if decision.reviewer != reviewer:
        raise ForbiddenError(f"Sample {sample_id} was last decided by {decision.reviewer}: only they can undo it; "
                             f"{_LATER}.")
    if undo_seconds <= 0:
        raise ConflictError(f"Undo is turned off (SPROUT_REVIEW_UNDO_SECONDS=0); {_LATER}.")
    if now > undoable_until(decision, undo_seconds):
        raise ConflictError(f"The undo window ({duration(undo_seconds)}) has passed; {_LATER}.")
    expected = _state_left_by(decision, sample)
    old_key = expected["object_key"]
    new_key = key_for(status=SampleStatus.PENDING, sha256=sample.sha256, ext=ext_of_key(old_key), label=None)
    values = {"status": SampleStatus.PENDING, "label": None, "approved_at": None, "reviewed_at": None,
              "reviewed_by": None, "object_key": new_key, "updated_at": now}
    if not queries.update_sample_where(session, sample_id=sample_id, expected=expected, values=values):
        session.rollback()
        session.refresh(sample)
        raise ConflictError(f"Sample {sample_id} changed since your decision (now {sample.status.value}); nothing "
                            "was changed: reload.")
    session.add(Review(sample_id=sample_id, reviewer=reviewer, action=ReviewAction.UNDO,
                       old_label=decision.new_label, new_label=None, created_at=now))
    commit_move(session, store, old_key, new_key)
    session.refresh(sample)
    return sample


def recent_reviews(session: Session, *, reviewer: str, undo_seconds: int, limit: int = 10,
                   now: datetime | None = None) -> list[RecentReview]:
    """``reviewer``'s latest decisions, newest first, each saying whether it can still be undone: it is the
    sample's newest audit row, the sample holds the state it left, and the window is open."""
    now = _aware(now or utcnow())
    decisions = queries.reviews_by(session, reviewer=reviewer, actions=DECISIONS, limit=limit)
    ids = [d.sample_id for d in decisions]
    latest = queries.latest_review_ids(session, sample_ids=ids)
    samples = queries.samples_by_id(session, ids=ids)
    recent = []
    for d in decisions:
        until = undoable_until(d, undo_seconds)
        sample = samples.get(d.sample_id)
        undoable = (undo_seconds > 0 and now <= until and latest.get(d.sample_id) == d.id and sample is not None
                    and _holds(sample, _state_left_by(d, sample)))
        recent.append(RecentReview(sample_id=d.sample_id, action=d.action, old_label=d.old_label,
                                   new_label=d.new_label, created_at=_aware(d.created_at), undoable=undoable,
                                   undoable_until=until if undoable else None))
    return recent


def undoable_until(decision: Review, undo_seconds: int) -> datetime:
    """The last moment ``decision`` can be undone."""
    return _aware(decision.created_at) + timedelta(seconds=undo_seconds)


def duration(seconds: int) -> str:
    """``300`` → "5 minutes", ``90`` → "90 seconds", ``3600`` → "1 hour"."""
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def _state_left_by(decision: Review, sample: Sample) -> dict[str, Any]:
    """The columns ``decision`` set, as the compare-and-set of its undo expects them."""
    status = SampleStatus.REJECTED if decision.action is ReviewAction.REJECT else SampleStatus.APPROVED
    key = key_for(status=status, sha256=sample.sha256, ext=ext_of_key(sample.object_key), label=decision.new_label)
    return {"status": status, "label": decision.new_label, "reviewed_by": decision.reviewer,
            "reviewed_at": decision.created_at, "object_key": key}


def _holds(sample: Sample, state: dict[str, Any]) -> bool:
    """Whether ``sample`` is still in ``state`` (datetimes compared as instants)."""
    def same(now: Any, then: Any) -> bool:
        return _aware(now) == _aware(then) if isinstance(now, datetime) and isinstance(then, datetime) else now == then

    return all(same(getattr(sample, column), value) for column, value in state.items())


def _nothing_to_undo(sample_id: int, row: Review | None) -> str:
    if row is None:
        return f"Sample {sample_id} has no decision to undo."
    if row.action is ReviewAction.UNDO:
        return f"Sample {sample_id}'s decision was already undone by {row.reviewer}: it is back in the queue."
    return (f"Sample {sample_id} changed after its last decision ({row.action.value} by {row.reviewer}): nothing "
            f"to undo; {_LATER}.")


def _aware(moment: datetime) -> datetime:
    """Aware UTC (SQLite hands back naive datetimes, stored as UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
