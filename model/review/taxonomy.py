"""Taxonomy changes by an admin: rename a label, merge one into another, retire one.

Every affected sample changes in one database transaction, audited: a ``label_changes`` row (who, what, how many)
and a ``reviews`` row per sample pointing at it. Approved samples take the new label (rename, merge) or become
rejected (retire: never deleted; the old label stays in ``suggested_label`` and in the audit row); pending samples
whose prediction or suggestion names the label take the new name (a retired one stays, but cannot be approved).
An approved sample's object key holds its label (``labeled/<label>/<sha256>.<ext>``), so objects move as a
review's do: copy every object → commit → delete the old ones; a crash in between leaves extra copies that
``sprout fsck`` removes, never a row without its object. The change is a compare-and-set per sample: a review
that changed one of them meanwhile makes it a ConflictError (nothing changes; retry).

The change is recorded so the gate compares like with like (``model.data.label_changes`` maps the champion's
columns through it), makes a retrain due, and asks Airflow for one at once (``request_retrain``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from db import queries
from db.models import (
    LabelChange,
    LabelChangeKind,
    Review,
    ReviewAction,
    Sample,
    SampleStatus,
    contradiction_of,
    utcnow,
)
from model.core.errors import ConfigurationError, ConflictError, InvalidLabelError, NotFoundError, SproutError
from model.core.faults import crash_point
from model.core.settings import Settings
from model.data.label_changes import describe, follow, hold_labels
from model.data.samples import ext_of_key, key_for
from model.data.storage import ObjectStore, check_label

log = logging.getLogger(__name__)

ACTIONS = {LabelChangeKind.RENAME: ReviewAction.RENAME, LabelChangeKind.MERGE: ReviewAction.MERGE,
           LabelChangeKind.RETIRE: ReviewAction.RETIRE}


@dataclass(frozen=True)
class RetrainRequest:
    """Whether Airflow was asked for a retrain after the change, and what it answered (or why not)."""

    triggered: bool
    detail: str
    dag_run_id: str | None = None


@dataclass(frozen=True)
class TaxonomyChange:
    """One recorded change: ``label`` renamed or merged ``into`` another, or retired (``into`` None)."""

    id: int
    kind: str
    label: str
    into: str | None
    changed_by: str
    approved: int
    pending: int
    created_at: datetime
    retrain: RetrainRequest | None = None

    @classmethod
    def from_row(cls, row: LabelChange, retrain: RetrainRequest | None = None) -> TaxonomyChange:
        return cls(id=row.id, kind=row.kind.value, label=row.label, into=row.into, changed_by=row.changed_by,
                   approved=row.approved, pending=row.pending, created_at=row.created_at, retrain=retrain)

    def to_dict(self) -> dict[str, Any]:
        """The JSON of the CLI and the API."""
        return asdict(self)


@dataclass(frozen=True)
class _Move:
    """One approved sample's new state: its object moves from ``old_key`` to ``new_key``."""

    sample: Sample
    old_key: str
    new_key: str


def check_admin(session: Session, username: str) -> None:
    """ConfigurationError unless ``username`` is an active admin account (the CLI's ``--by``)."""
    user = queries.get_user(session, username=username)
    if user is None or not user.is_active or not user.is_admin:
        raise ConfigurationError(f"{username!r} is not an active admin account (sprout users set-admin NAME).")


def rename_label(session: Session, store: ObjectStore, *, label: str, to: str, admin: str) -> TaxonomyChange:
    """Rename ``label`` to ``to``, a name no approved sample has (else: merge). Undoing a rename (``b`` back to
    ``a``) is a rename too."""
    label, to = check_label(label), check_label(to)
    if to == label:
        raise InvalidLabelError(f"{label!r} already has that name.")
    _check_target(session, label, to, allow_undo=True)
    if queries.approved_with_label(session, label=to):
        raise ConflictError(f"Label {to!r} exists already: merge {label!r} into it instead.")
    return _apply(session, store, LabelChangeKind.RENAME, label, to, admin)


def merge_label(session: Session, store: ObjectStore, *, label: str, into: str, admin: str) -> TaxonomyChange:
    """Merge ``label`` into ``into``, an existing label: every sample of ``label`` takes ``into``."""
    label, into = check_label(label), check_label(into)
    if into == label:
        raise InvalidLabelError(f"Cannot merge {label!r} into itself.")
    _check_target(session, label, into, allow_undo=False)
    if not queries.approved_with_label(session, label=into):
        raise NotFoundError(f"No approved sample has the label {into!r}: rename {label!r} to it instead.")
    return _apply(session, store, LabelChangeKind.MERGE, label, into, admin)


def retire_label(session: Session, store: ObjectStore, *, label: str, admin: str) -> TaxonomyChange:
    """Retire ``label``: its approved samples become rejected (kept, with the label in ``suggested_label``), and
    the label can no longer be approved. Models stop predicting it from the next retrain on."""
    return _apply(session, store, LabelChangeKind.RETIRE, check_label(label), None, admin)


def _check_target(session: Session, label: str, target: str, *, allow_undo: bool) -> None:
    """A target must be a name in use today: not retired, and not an old name that now means another label
    (except, for a rename, the old name of ``label`` itself: an undo)."""
    changes = queries.label_changes(session)
    now_called = follow(target, changes)
    if now_called == target or (allow_undo and now_called == label):
        return
    if now_called is None:
        raise ConflictError(f"Label {target!r} was retired: choose another name.")
    raise ConflictError(f"{target!r} is an old name of {now_called!r}: choose another name.")


def _apply(session: Session, store: ObjectStore, kind: LabelChangeKind, label: str, into: str | None,
           admin: str) -> TaxonomyChange:
    """Copy every moved object, then change every sample and write the audit in one transaction, then delete
    the old objects."""
    approved = queries.approved_with_label(session, label=label)
    if not approved:
        raise NotFoundError(f"No approved sample has the label {label!r}.")
    pending = queries.pending_naming(session, label=label) if into is not None else []
    moves = [_Move(s, s.object_key, _new_key(s, into)) for s in approved]
    session.commit()  # end the read transaction: no database connection is held while objects are copied
    try:
        for move in moves:
            if move.new_key != move.old_key:
                store.copy(move.old_key, move.new_key)
        crash_point("move.after_copy")
        row = _record(session, kind, label, into, admin, moves, pending)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    session.expire_all()  # the samples were updated in SQL: reload them when next read
    crash_point("move.after_commit")
    _delete_old(store, moves)
    log.info("label change %s: %s (%d approved, %d pending samples)", row.id, describe(row), row.approved,
             row.pending)
    return TaxonomyChange.from_row(row)


def _new_key(sample: Sample, into: str | None) -> str:
    status = SampleStatus.APPROVED if into is not None else SampleStatus.REJECTED
    return key_for(status=status, sha256=sample.sha256, ext=ext_of_key(sample.object_key), label=into)


def _record(session: Session, kind: LabelChangeKind, label: str, into: str | None, admin: str,
            moves: list[_Move], pending: list[Sample]) -> LabelChange:
    """The transaction's writes: the change, each sample (compare-and-set), an audit row per sample. The labels
    lock, taken first, waits for the reviews in flight (their approvals are then seen by the final check) and
    keeps new ones from reading the labels until the commit."""
    hold_labels(session, change=True)
    now = utcnow()
    row = LabelChange(kind=kind, label=label, into=into, changed_by=admin, approved=len(moves), pending=0,
                      created_at=now)
    session.add(row)
    session.flush()  # its id, for the audit rows
    action = ACTIONS[kind]
    for move in moves:
        values: dict[str, Any] = {"label": into, "object_key": move.new_key, "updated_at": now}
        if into is None:
            values |= {"status": SampleStatus.REJECTED, "suggested_label": label, "approved_at": None,
                       "reviewed_at": now, "reviewed_by": admin}
        expected = {"status": SampleStatus.APPROVED, "label": label, "object_key": move.old_key}
        if not queries.update_sample_where(session, sample_id=move.sample.id, expected=expected, values=values):
            raise ConflictError(f"Sample {move.sample.id} changed meanwhile; nothing was changed: retry.")
        session.add(Review(sample_id=move.sample.id, reviewer=admin, action=action, old_label=label, new_label=into,
                           created_at=now, label_change_id=row.id))
    assert into is not None or not pending
    for sample in pending:
        row.pending += _rename_pending(session, sample, label, into or "", admin, action, now, row.id)
    if queries.approved_with_label(session, label=label):
        raise ConflictError(f"A sample was approved as {label!r} meanwhile; nothing was changed: retry.")
    return row


def _rename_pending(session: Session, sample: Sample, label: str, into: str, admin: str, action: ReviewAction,
                    now: datetime, change_id: int) -> int:
    """A pending sample's prediction and suggestion take the new name (1), unless it was reviewed meanwhile (0)."""
    def rename(name: str | None) -> str | None:
        return into if name == label else name

    expected = {"status": SampleStatus.PENDING, "predicted_label": sample.predicted_label,
                "suggested_label": sample.suggested_label}
    predicted, suggested = rename(sample.predicted_label), rename(sample.suggested_label)
    values = {"predicted_label": predicted, "suggested_label": suggested, "updated_at": now,
              "contradiction": contradiction_of(suggested, predicted, sample.confidence)}
    if not queries.update_sample_where(session, sample_id=sample.id, expected=expected, values=values):
        return 0
    session.add(Review(sample_id=sample.id, reviewer=admin, action=action, old_label=label, new_label=into,
                       created_at=now, label_change_id=change_id))
    return 1


def _delete_old(store: ObjectStore, moves: list[_Move]) -> None:
    """Delete the objects the committed rows no longer name, each once its new copy is there: a ``sprout fsck``
    that ran before the commit may have removed an early copy as unreferenced, so a missing one is copied again
    first and the only copy is never deleted. A failure leaves copies ``sprout fsck`` removes."""
    for move in moves:
        if move.new_key == move.old_key:
            continue
        try:
            if not store.exists(move.new_key):
                log.warning("%s vanished before the commit (sprout fsck?): copying it again", move.new_key)
                store.copy(move.old_key, move.new_key)
            store.delete(move.old_key)
        except SproutError as exc:
            log.warning("could not delete %s after a label change (sprout fsck removes it): %s", move.old_key, exc)


def with_retrain(settings: Settings, change: TaxonomyChange) -> TaxonomyChange:
    """``change`` with the answer to ``request_retrain``."""
    return replace(change, retrain=request_retrain(settings, change))


def request_retrain(settings: Settings, change: TaxonomyChange) -> RetrainRequest:
    """Ask Airflow for a forced retrain now (the retrain DAG, as ``POST /admin/retrain`` with force does). Without
    Airflow, or when it does not answer, the change still makes the next ``retrain-check`` due (the DAG's
    weekly run trains then), and ``sprout train`` trains at once."""
    from model.core.errors import OrchestratorUnavailableError
    from model.runtime.airflow_client import AirflowClient

    fallback = "the next scheduled retrain-check is due (labels changed); `sprout train` trains now"
    if not settings.airflow_url:
        return RetrainRequest(False, f"Airflow is not configured: {fallback}.")
    what = describe(change)
    try:
        run = AirflowClient.from_settings(settings).trigger(force=True, note=f"label change {change.id}: {what}")
    except OrchestratorUnavailableError as exc:
        log.warning("could not start a retrain after label change %s: %s", change.id, exc)
        return RetrainRequest(False, f"{exc} {fallback[0].upper()}{fallback[1:]}.")
    return RetrainRequest(True, f"retrain DAG run {run.dag_run_id} started ({run.state})", run.dag_run_id)


@dataclass(frozen=True)
class LabelSummary:
    """A label in use today: its approved samples, and the pending samples predicted or suggested as it."""

    label: str
    approved: int
    pending: int


def label_overview(session: Session, *, limit: int = 50) -> tuple[list[LabelSummary], list[TaxonomyChange]]:
    """The labels of approved samples with their counts, and the latest changes (newest first)."""
    approved = queries.count_approved_by_label(session)
    summaries = [LabelSummary(label, n, len(queries.pending_naming(session, label=label)))
                 for label, n in sorted(approved.items())]
    changes = [TaxonomyChange.from_row(c) for c in queries.label_changes(session, limit=limit, newest_first=True)]
    return summaries, changes
