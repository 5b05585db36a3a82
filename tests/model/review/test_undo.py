"""A reviewer's undo of their own decision: pending again, audited, a compare-and-set on the state the decision
left (real threads on PostgreSQL and SQLite), only within the window; and the "recently reviewed" list."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from db.models import Review, ReviewAction, Sample, SampleSource, SampleStatus
from model.core.errors import ConflictError, ForbiddenError, NotFoundError
from model.core.settings import Settings
from model.data.samples import Prediction, add_sample, pending_key
from model.review.actions import relabel_sample, review_sample
from model.review.taxonomy import rename_label
from model.review.undo import recent_reviews, undo_review
from model.runtime.services import Services
from tests.utils.paths import SCENES
from tests.utils.services import migrated_services

LABELS = sorted(p.name for p in SCENES.iterdir() if p.is_dir())  # six classes, some overlapping
WINDOW = 300


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.server), "sqlite"])
def svc(request: pytest.FixtureRequest, tmp_path: Path) -> Services:
    url = request.getfixturevalue("fresh_pg_url") if request.param == "postgresql" else None
    return migrated_services(Settings(home=tmp_path, database_url=url))


def scene(label: str, i: int) -> bytes:
    return sorted((SCENES / label).glob("*.jpg"))[i].read_bytes()


def submit(svc: Services, label: str, i: int = 0, *, predicted: str | None = None) -> int:
    """A pending sample: a scene photo of ``label``, suggested as it, predicted as ``predicted``."""
    prediction = Prediction(label=predicted, confidence=0.6, model_version="3") if predicted else None
    with svc.session() as session:
        sample, created = add_sample(session, svc.store, data=scene(label, i), source=SampleSource.UPLOAD,
                                     suggested_label=label, prediction=prediction)
        assert created
        return sample.id


def decide(svc: Services, sample_id: int, action: str, reviewer: str = "ann", label: str | None = None) -> Sample:
    with svc.session() as session:
        return review_sample(session, svc.store, sample_id=sample_id, action=action, reviewer=reviewer, label=label)


def undo(svc: Services, sample_id: int, reviewer: str = "ann", **kwargs: object) -> Sample:
    with svc.session() as session:
        return undo_review(session, svc.store, sample_id=sample_id, reviewer=reviewer,
                           undo_seconds=kwargs.pop("undo_seconds", WINDOW), **kwargs)  # type: ignore[arg-type]


def state(svc: Services, sample_id: int) -> tuple[object, ...]:
    """The sample's row and audit log, and the keys holding its photo."""
    with svc.session() as session:
        s = session.get(Sample, sample_id)
        assert s is not None
        log = [(r.action.value, r.reviewer, r.old_label, r.new_label)
               for r in session.query(Review).filter(Review.sample_id == sample_id).order_by(Review.id)]
        row = (s.status, s.label, s.reviewed_by, s.reviewed_at, s.approved_at, s.object_key, s.suggested_label,
               s.predicted_label, s.confidence)
        return row, log, sorted(k for k in svc.store.list() if s.sha256 in k)


@pytest.mark.parametrize("how", ["approve", "correct", "reject"])
def test_undo_restores_pending_moves_the_photo_back_and_is_audited(svc: Services, how: str) -> None:
    label, other = LABELS[2], LABELS[4]
    sid = submit(svc, label, predicted=other if how == "correct" else label)
    pending_before = state(svc, sid)
    decided = decide(svc, sid, "reject" if how == "reject" else "approve", label=label if how == "correct" else None)
    assert decided.status is (SampleStatus.REJECTED if how == "reject" else SampleStatus.APPROVED)
    assert [e[0] for e in state(svc, sid)[1]] == [how]
    decided_key = decided.object_key

    back = undo(svc, sid)
    assert back.status is SampleStatus.PENDING and back.label is None and back.approved_at is None
    assert back.reviewed_at is None and back.reviewed_by is None
    row, log, keys = state(svc, sid)
    assert row == pending_before[0]  # prediction, confidence and suggestion as they were
    assert row[5] == pending_key(back.sha256, "jpg") and keys == [row[5]] and decided_key not in keys
    new_label = None if how == "reject" else label
    assert log[-1] == ("undo", "ann", new_label, None) and [e[0] for e in log] == [how, "undo"]
    with svc.session() as session:
        assert session.query(Review).filter(Review.sample_id == sid).count() == 2
    assert decide(svc, sid, "approve", reviewer="bob", label=LABELS[0]).label == LABELS[0]  # decidable again


def test_undo_only_within_the_window_and_not_when_turned_off(svc: Services) -> None:
    sid = submit(svc, LABELS[1])
    decided = decide(svc, sid, "approve", label=LABELS[1])
    at = decided.reviewed_at
    assert at is not None
    before = state(svc, sid)
    for kwargs in ({"now": at + timedelta(seconds=WINDOW, microseconds=1)}, {"undo_seconds": 0}):
        with pytest.raises(ConflictError) as refused:
            undo(svc, sid, **kwargs)
        assert state(svc, sid) == before  # nothing changed
    assert str(refused.value).startswith("Undo is turned off")
    with pytest.raises(ConflictError, match=r"The undo window \(5 minutes\) has passed; an admin can relabel it"):
        undo(svc, sid, now=at + timedelta(minutes=6))
    with pytest.raises(ConflictError, match=r"The undo window \(90 seconds\) has passed"):
        undo(svc, sid, now=at + timedelta(seconds=91), undo_seconds=90)
    assert undo(svc, sid, now=at + timedelta(seconds=WINDOW)).status is SampleStatus.PENDING  # the last moment


def test_only_the_reviewers_own_latest_decision_and_only_once(svc: Services) -> None:
    sid = submit(svc, LABELS[3])
    with pytest.raises(ConflictError, match="no decision to undo"):
        undo(svc, sid)
    with pytest.raises(NotFoundError):
        undo(svc, sid + 1000)
    decide(svc, sid, "reject", reviewer="bob")
    before = state(svc, sid)
    with pytest.raises(ForbiddenError, match="last decided by bob: only they can undo it"):
        undo(svc, sid, reviewer="ann")
    assert state(svc, sid) == before
    undo(svc, sid, reviewer="bob")
    with pytest.raises(ConflictError, match="already undone by bob"):
        undo(svc, sid, reviewer="bob")


@pytest.mark.parametrize("between", ["relabel", "unapprove", "rename", "unaudited write"])
def test_a_change_after_the_decision_makes_the_undo_a_conflict_that_changes_nothing(svc: Services,
                                                                                      between: str) -> None:
    label, other = LABELS[0], LABELS[5]
    sid = submit(svc, label)
    decide(svc, sid, "approve", label=label)
    with svc.session() as session:
        if between in ("relabel", "unapprove"):
            relabel_sample(session, svc.store, sample_id=sid, label=other if between == "relabel" else None,
                           reviewer="admin")
        elif between == "rename":
            rename_label(session, svc.store, label=label, to=f"{label}-2", admin="admin")
        else:  # a write the audit log does not show: only the compare-and-set can notice it
            session.execute(update(Sample).where(Sample.id == sid).values(label=other))
            session.commit()
    before = state(svc, sid)
    with pytest.raises(ConflictError, match="changed"):
        undo(svc, sid)
    assert state(svc, sid) == before


def test_concurrent_undos_and_an_admins_relabel_exactly_one_wins(svc: Services) -> None:
    """Per sample, two undos of the same decision and an admin's relabel start at once: one wins, the others get
    ConflictError, the row, the audit log and the store agree."""
    ids = [submit(svc, label, i) for i, label in enumerate(LABELS)]
    for sid, label in zip(ids, LABELS, strict=True):
        decide(svc, sid, "approve", label=label)
    contenders = ("undo-1", "undo-2", "relabel")
    barrier = threading.Barrier(len(ids) * len(contenders))
    outcomes: dict[tuple[int, str], str] = {}

    def contend(sid: int, label: str, who: str) -> None:
        barrier.wait()
        with svc.session() as session:
            try:
                if who == "relabel":
                    relabel_sample(session, svc.store, sample_id=sid, label=f"{label}-fixed", reviewer="admin")
                else:
                    undo_review(session, svc.store, sample_id=sid, reviewer="ann", undo_seconds=WINDOW)
                outcomes[(sid, who)] = "ok"
            except ConflictError as exc:
                outcomes[(sid, who)] = f"409: {exc}"

    threads = [threading.Thread(target=contend, args=(sid, label, who))
               for sid, label in zip(ids, LABELS, strict=True) for who in contenders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(outcomes) == len(threads)
    for sid, label in zip(ids, LABELS, strict=True):
        won = [who for who in contenders if outcomes[(sid, who)] == "ok"]
        assert len(won) == 1, {who: outcomes[(sid, who)] for who in contenders}
        (row, log, keys) = state(svc, sid)
        assert [e[0] for e in log] == ["approve", "relabel" if won == ["relabel"] else "undo"]
        if won == ["relabel"]:
            assert row[:3] == (SampleStatus.APPROVED, f"{label}-fixed", "admin")
        else:
            assert row[:3] == (SampleStatus.PENDING, None, None)
        assert keys == [row[5]]  # the row's object exists; the other copy is gone


def test_recent_reviews_lists_own_decisions_newest_first_with_undoable(svc: Services) -> None:
    a, b, c, d = (submit(svc, label, predicted=LABELS[0]) for label in LABELS[1:5])
    decide(svc, a, "approve")  # the prediction: approve
    decide(svc, b, "approve", label=LABELS[2])  # correct
    decide(svc, c, "reject")
    decide(svc, d, "approve", reviewer="bob")
    with svc.session() as session:
        recent = recent_reviews(session, reviewer="ann", undo_seconds=WINDOW)
    assert [(r.sample_id, r.action.value, r.old_label, r.new_label) for r in recent] == [
        (c, "reject", LABELS[3], None), (b, "correct", LABELS[2], LABELS[2]), (a, "approve", LABELS[1], LABELS[0])]
    assert all(r.undoable and r.undoable_until == r.created_at + timedelta(seconds=WINDOW) for r in recent)
    assert recent[0].created_at.tzinfo is not None

    undo(svc, c)
    with svc.session() as session:
        relabel_sample(session, svc.store, sample_id=a, label=LABELS[5], reviewer="admin")
        recent = recent_reviews(session, reviewer="ann", undo_seconds=WINDOW)
        assert {r.sample_id: r.undoable for r in recent} == {c: False, b: True, a: False}
        assert {r.sample_id: r.undoable_until is None for r in recent} == {c: True, b: False, a: True}
        assert [r.action for r in recent_reviews(session, reviewer="ann", undo_seconds=WINDOW, limit=1)] == [
            ReviewAction.REJECT]
        later = recent[1].created_at + timedelta(seconds=WINDOW + 1)
        assert not any(r.undoable for r in recent_reviews(session, reviewer="ann", undo_seconds=WINDOW, now=later))
        assert not any(r.undoable for r in recent_reviews(session, reviewer="ann", undo_seconds=0))
        assert [r.sample_id for r in recent_reviews(session, reviewer="bob", undo_seconds=WINDOW)] == [d]
