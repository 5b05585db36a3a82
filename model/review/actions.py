"""A reviewer's decisions on a sample: approve, correct or reject a pending one; an admin's relabel or unapprove
of an approved one. Each is audit-logged, a compare-and-set on the sample's status, and moves the object
crash-safely (copy → commit → delete)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from db import queries
from db.models import Review, ReviewAction, Sample, SampleStatus, utcnow
from model.core.errors import ConflictError, InvalidLabelError
from model.core.faults import crash_point
from model.data.label_changes import current_label, hold_labels
from model.data.samples import ext_of_key, get_sample, key_for
from model.data.storage import ObjectStore, check_label


def review_sample(
    session: Session,
    store: ObjectStore,
    *,
    sample_id: int,
    action: ReviewAction | str,
    reviewer: str,
    label: str | None = None,
) -> Sample:
    """Approve (with the predicted or a corrected label) or reject a pending sample; audit-logged.

    A plain approve (no ``label``) takes the model's prediction, never the uploader's ``suggested_label``
    (anyone may suggest one); with no prediction the reviewer must name the label. A label an admin renamed or
    merged is filed under its new name; a retired one is refused (InvalidLabelError).
    The decision is a compare-and-set on ``status = pending``: of two reviewers deciding at once, one wins
    and the other gets ConflictError with the state the winner left; the row and the audit log agree.
    """
    action = ReviewAction(action)
    sample = get_sample(session, sample_id)
    if sample.status is not SampleStatus.PENDING:
        raise _already_reviewed(sample)
    old_label = sample.label or sample.suggested_label or sample.predicted_label
    now, chosen = utcnow(), label or sample.predicted_label
    if action is ReviewAction.REJECT:
        status, new_label, approved_at = SampleStatus.REJECTED, None, None
    else:
        if not chosen:
            raise InvalidLabelError("A label is required to approve a sample with no prediction.")
        if action is ReviewAction.APPROVE and check_label(chosen) != (sample.predicted_label or chosen):
            action = ReviewAction.CORRECT
        new_label = _label_today(session, chosen)  # an old name means its label of today
        status, approved_at = SampleStatus.APPROVED, now
    old_key = sample.object_key
    new_key = key_for(status=status, sha256=sample.sha256, ext=ext_of_key(old_key), label=new_label)
    claimed = queries.update_sample_if(session, sample_id=sample_id, expected=SampleStatus.PENDING, values={
        "status": status, "label": new_label, "approved_at": approved_at, "reviewed_at": now,
        "reviewed_by": reviewer, "object_key": new_key, "updated_at": now})
    if not claimed:
        session.rollback()
        session.refresh(sample)
        raise _already_reviewed(sample)
    if chosen and new_label is not None:
        _check_still_today(session, chosen, new_label)
    session.add(Review(sample_id=sample_id, reviewer=reviewer, action=action, old_label=old_label,
                       new_label=new_label, created_at=now))
    commit_move(session, store, old_key, new_key)
    session.refresh(sample)
    return sample


def relabel_sample(session: Session, store: ObjectStore, *, sample_id: int, label: str | None,
                   reviewer: str) -> Sample:
    """An admin's correction of an approved sample: a new label, or (``label=None``) back to pending.

    Audited like a review; the object moves crash-safely (copy → commit → delete) and the change is a
    compare-and-set on ``status = approved``.
    """
    sample = get_sample(session, sample_id)
    if sample.status is not SampleStatus.APPROVED:
        raise ConflictError(f"Sample {sample_id} is {sample.status.value}, not approved: review it instead.")
    old_label, now = sample.label, utcnow()
    if label is None:
        action, status, new_label, approved_at = ReviewAction.UNAPPROVE, SampleStatus.PENDING, None, None
    else:
        action, status, approved_at = ReviewAction.RELABEL, SampleStatus.APPROVED, now
        new_label = _label_today(session, label)
    old_key = sample.object_key
    new_key = key_for(status=status, sha256=sample.sha256, ext=ext_of_key(old_key), label=new_label)
    values = {"status": status, "label": new_label, "approved_at": approved_at, "reviewed_at": now,
              "reviewed_by": reviewer, "object_key": new_key, "updated_at": now}
    if label is None:
        values["suggested_label"] = old_label
    if not queries.update_sample_if(session, sample_id=sample_id, expected=SampleStatus.APPROVED, values=values):
        session.rollback()
        session.refresh(sample)
        raise ConflictError(f"Sample {sample_id} changed meanwhile ({sample.status.value}); reload and retry.")
    if label is not None and new_label is not None:
        _check_still_today(session, label, new_label)
    session.add(Review(sample_id=sample_id, reviewer=reviewer, action=action, old_label=old_label,
                       new_label=new_label, created_at=now))
    commit_move(session, store, old_key, new_key)
    session.refresh(sample)
    return sample


def _label_today(session: Session, chosen: str) -> str:
    """``chosen`` as it is called today, read under the labels lock (held until the commit), so that a rename,
    merge or retire cannot commit between this read and the compare-and-set (PostgreSQL)."""
    hold_labels(session)
    return current_label(session, check_label(chosen))


def _check_still_today(session: Session, chosen: str, new_label: str) -> None:
    """After the compare-and-set, in its transaction, ``chosen`` must still mean ``new_label``: on SQLite the
    update holds the write lock, so no label change can commit after this read and before the commit; one that
    committed before it makes the review a ConflictError (InvalidLabelError once retired), nothing changed."""
    try:
        today = current_label(session, check_label(chosen))
    except InvalidLabelError:
        session.rollback()
        raise
    if today != new_label:
        session.rollback()
        raise ConflictError(f"Label {chosen!r} became {today!r} meanwhile; nothing was changed: reload and retry.")


def _already_reviewed(sample: Sample) -> ConflictError:
    by = f" by {sample.reviewed_by}" if sample.reviewed_by else ""
    label = f" as {sample.label}" if sample.label else ""
    return ConflictError(f"Sample {sample.id} was already reviewed ({sample.status.value}{label}{by}).")


def commit_move(session: Session, store: ObjectStore, old_key: str, new_key: str) -> None:
    """Copy → commit (the row already names ``new_key``) → delete: a crash leaves two copies, never zero."""
    if new_key != old_key:
        try:
            store.copy(old_key, new_key)
        except BaseException:
            session.rollback()
            raise
        crash_point("move.after_copy")
    session.commit()
    if new_key != old_key:
        crash_point("move.after_commit")
        store.delete(old_key)
