"""Rename, merge and retire a label on six scene classes, on PostgreSQL and SQLite: every affected sample changes in
one audited transaction, the objects move, old names keep meaning their label, refusals change nothing, and a
retrain becomes due."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

from db import queries
from db.models import (
    LabelChange,
    Review,
    ReviewAction,
    RunStatus,
    Sample,
    SampleSource,
    SampleStatus,
    TrainingRun,
    TrainingRunSample,
)
from model.core.accounts import create_user
from model.core.errors import ConfigurationError, ConflictError, InvalidLabelError, NotFoundError
from model.core.settings import Settings
from model.data.importer import import_directory
from model.data.samples import add_sample
from model.learning.promotion import retrain_check
from model.review.actions import relabel_sample, review_sample
from model.review.taxonomy import (
    check_admin,
    label_overview,
    merge_label,
    rename_label,
    request_retrain,
    retire_label,
)
from model.runtime.services import Services
from tests.utils.datasets import scenes_tree
from tests.utils.images import random_image_bytes
from tests.utils.services import migrated_services

SCENES = {"buildings": 4, "forest": 4, "glacier": 3, "mountain": 3, "sea": 2, "street": 2}


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.server), "sqlite"])
def svc(request: pytest.FixtureRequest, tmp_path: Path) -> Services:
    url = request.getfixturevalue("fresh_pg_url") if request.param == "postgresql" else None
    services = migrated_services(Settings(home=tmp_path / "home", database_url=url))
    with services.session() as session:
        summary = import_directory(session, services.store, scenes_tree(tmp_path / "scenes", SCENES))
        assert not summary.errors and sum(summary.added.values()) == sum(SCENES.values())
    return services


def pending(svc: Services, seed: int, *, predicted: str | None, suggested: str | None = None) -> int:
    """A pending upload with a model's prediction (set directly: no model needed) and a suggestion."""
    with svc.session() as session:
        sample, _ = add_sample(session, svc.store, data=random_image_bytes(seed=seed), source=SampleSource.UPLOAD,
                               suggested_label=suggested)
        sample.predicted_label, sample.confidence = predicted, 0.6
        session.commit()
        return sample.id


def by_label(svc: Services) -> Counter[str]:
    with svc.session() as session:
        return Counter(s.label for s in queries.approved_samples(session))


def test_rename_moves_every_sample_and_object_in_one_audited_change(svc: Services) -> None:
    predicted = pending(svc, 1, predicted="sea", suggested="sea")
    other = pending(svc, 2, predicted="forest", suggested="sea")
    with svc.session() as session:
        before = {s.id: s.object_key for s in queries.approved_with_label(session, label="sea")}
        change = rename_label(session, svc.store, label="sea", to="ocean", admin="boss")
    assert (change.kind, change.label, change.into, change.changed_by) == ("rename", "sea", "ocean", "boss")
    assert change.approved == 2 and change.pending == 2
    assert by_label(svc) == Counter({k if k != "sea" else "ocean": v for k, v in SCENES.items()})
    keys = set(svc.store.list())
    with svc.session() as session:
        for sample_id, old_key in before.items():
            sample = session.get(Sample, sample_id)
            assert sample.label == "ocean" and sample.object_key == old_key.replace("/sea/", "/ocean/")
            assert sample.object_key in keys and old_key not in keys  # moved: copied, committed, old one deleted
            assert [(r.action, r.old_label, r.new_label, r.reviewer, r.label_change_id)
                    for r in sample.reviews] == [(ReviewAction.RENAME, "sea", "ocean", "boss", change.id)]
        renamed = session.get(Sample, predicted)
        assert (renamed.predicted_label, renamed.suggested_label, renamed.status) == ("ocean", "ocean",
                                                                                     SampleStatus.PENDING)
        untouched = session.get(Sample, other)
        assert (untouched.predicted_label, untouched.suggested_label) == ("forest", "ocean")
        assert len(session.query(Review).filter(Review.label_change_id == change.id).all()) == 4
    assert {row.object_key for row in _all(svc)} == keys  # one object per row, nothing left over


def test_merge_sums_two_labels_and_an_old_name_keeps_meaning_the_merged_label(svc: Services) -> None:
    waiting = pending(svc, 3, predicted="glacier")
    with svc.session() as session:
        change = merge_label(session, svc.store, label="glacier", into="mountain", admin="boss")
    assert change.kind == "merge" and change.approved == 3 and change.pending == 1
    counts = by_label(svc)
    assert counts["mountain"] == 6 and "glacier" not in counts and len(counts) == 5
    with svc.session() as session:  # a reviewer's plain approve of the old prediction files it under the new label
        approved = review_sample(session, svc.store, sample_id=waiting, action="approve", reviewer="r")
        assert approved.label == "mountain" and approved.object_key.startswith("labeled/mountain/")
        stale = pending(svc, 4, predicted="forest")
        typed = review_sample(session, svc.store, sample_id=stale, action="correct", label="glacier", reviewer="r")
        assert typed.label == "mountain"


def test_retire_rejects_its_samples_keeps_them_and_refuses_the_label_afterwards(svc: Services) -> None:
    waiting = pending(svc, 5, predicted="street")
    with svc.session() as session:
        ids = [s.id for s in queries.approved_with_label(session, label="street")]
        change = retire_label(session, svc.store, label="street", admin="boss")
    assert change.kind == "retire" and change.into is None and change.approved == 2 and change.pending == 0
    with svc.session() as session:
        for sample_id in ids:
            sample = session.get(Sample, sample_id)
            assert sample.status is SampleStatus.REJECTED and sample.label is None
            assert sample.suggested_label == "street" and sample.reviewed_by == "boss"
            assert sample.object_key.startswith("rejected/") and svc.store.exists(sample.object_key)
            assert sample.reviews[-1].action is ReviewAction.RETIRE and sample.reviews[-1].old_label == "street"
        with pytest.raises(InvalidLabelError, match="'street' was retired by boss"):
            review_sample(session, svc.store, sample_id=waiting, action="approve", reviewer="r")
        session.rollback()
        assert session.get(Sample, waiting).status is SampleStatus.PENDING
        forest = queries.approved_with_label(session, label="forest")[0].id
        with pytest.raises(InvalidLabelError, match="retired"):
            relabel_sample(session, svc.store, sample_id=forest, label="street", reviewer="boss")
        session.rollback()
        with pytest.raises(ConflictError, match="retired"):  # nor can another label take its name
            rename_label(session, svc.store, label="forest", to="street", admin="boss")
    assert by_label(svc)["forest"] == SCENES["forest"] and "street" not in by_label(svc)


def test_refusals_change_nothing(svc: Services) -> None:
    keys = set(svc.store.list())
    with svc.session() as session:
        refusals = [
            (lambda: rename_label(session, svc.store, label="snow", to="ice", admin="boss"), NotFoundError),
            (lambda: rename_label(session, svc.store, label="sea", to="sea", admin="boss"), InvalidLabelError),
            (lambda: rename_label(session, svc.store, label="sea", to="forest", admin="boss"), ConflictError),
            (lambda: rename_label(session, svc.store, label="sea", to="../up", admin="boss"), InvalidLabelError),
            (lambda: merge_label(session, svc.store, label="sea", into="sea", admin="boss"), InvalidLabelError),
            (lambda: merge_label(session, svc.store, label="sea", into="lake", admin="boss"), NotFoundError),
            (lambda: retire_label(session, svc.store, label="lake", admin="boss"), NotFoundError),
        ]
        for call, error in refusals:
            with pytest.raises(error):
                call()
            session.rollback()
        assert session.query(LabelChange).count() == 0 and session.query(Review).count() == 0
    assert by_label(svc) == Counter(SCENES) and set(svc.store.list()) == keys


def test_a_rename_can_be_undone_but_an_old_name_is_not_reused_for_another_label(svc: Services) -> None:
    with svc.session() as session:
        rename_label(session, svc.store, label="sea", to="ocean", admin="boss")
        with pytest.raises(ConflictError, match="'sea' is an old name of 'ocean'"):
            rename_label(session, svc.store, label="street", to="sea", admin="boss")
        session.rollback()
        back = rename_label(session, svc.store, label="ocean", to="sea", admin="boss")
    assert back.approved == 2 and by_label(svc) == Counter(SCENES)
    with svc.session() as session:
        labels, changes = label_overview(session)
    assert [c.kind for c in changes] == ["rename", "rename"] and changes[0].into == "sea"  # newest first
    assert {s.label: s.approved for s in labels} == SCENES


def test_a_review_that_changes_a_sample_meanwhile_makes_the_rename_a_conflict(svc: Services,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The reviewer relabels one of the samples after the rename read them and while it copies: the rename's
    compare-and-set fails, nothing changes, and the reviewer's decision stands."""
    with svc.session() as session:
        target = queries.approved_with_label(session, label="forest")[0].id
    copy, done = svc.store.copy, threading.Event()

    def copy_then_race(src: str, dst: str) -> None:
        copy(src, dst)
        if not done.is_set():
            done.set()
            with svc.session() as other:
                relabel_sample(other, svc.store, sample_id=target, label="mountain", reviewer="r")

    monkeypatch.setattr(svc.store, "copy", copy_then_race)
    with svc.session() as session, pytest.raises(ConflictError, match="changed meanwhile"):
        rename_label(session, svc.store, label="forest", to="woods", admin="boss")
    assert by_label(svc)["forest"] == SCENES["forest"] - 1 and by_label(svc)["mountain"] == SCENES["mountain"] + 1
    assert "woods" not in by_label(svc)
    with svc.session() as session:
        assert session.query(LabelChange).count() == 0
        assert [r.action for r in session.query(Review).all()] == [ReviewAction.RELABEL]


def test_a_change_makes_a_retrain_due_and_without_airflow_says_how_it_follows(svc: Services) -> None:
    with svc.session() as session:  # a last successful run (its samples: all approved ones)
        run = TrainingRun(backbone="b", labels=sorted(SCENES), status=RunStatus.SUCCEEDED)
        session.add(run)
        session.commit()
        for sample in queries.approved_samples(session):
            session.add(TrainingRunSample(run_id=run.id, sample_id=sample.id, split=sample.split,
                                          label=sample.label or ""))
        session.commit()
    assert not retrain_check(svc).due
    with svc.session() as session:
        change = merge_label(session, svc.store, label="sea", into="glacier", admin="boss")
    check = retrain_check(svc)
    assert check.due and check.new_approved == 0
    assert check.reason == "labels changed since the last training run (merge sea into glacier by boss)"
    answer = request_retrain(svc.settings, change)
    assert not answer.triggered and "Airflow is not configured" in answer.detail and "due" in answer.detail


def test_only_an_active_admin_may_be_named(svc: Services) -> None:
    with svc.session() as session:
        create_user(session, username="boss", password="a-long-password-1", is_admin=True)
        create_user(session, username="helper", password="a-long-password-2")
        check_admin(session, "boss")
        for name in ("helper", "nobody"):
            with pytest.raises(ConfigurationError, match="not an active admin"):
                check_admin(session, name)


def _all(svc: Services) -> list[Sample]:
    with svc.session() as session:
        return queries.all_samples(session)


def test_an_import_files_an_old_folder_name_under_todays_label_and_reports_a_retired_one(svc: Services,
                                                                                        tmp_path: Path) -> None:
    with svc.session() as session:
        rename_label(session, svc.store, label="sea", to="ocean", admin="boss")
        retire_label(session, svc.store, label="street", admin="boss")
    tree = scenes_tree(tmp_path / "more", {"sea": SCENES["sea"] + 2, "street": SCENES["street"] + 1})
    with svc.session() as session:
        summary = import_directory(session, svc.store, tree)
    assert dict(summary.added) == {"ocean": 2} and summary.duplicates == SCENES["sea"]
    assert summary.errors == [("street/", "Label 'street' was retired by boss: choose another label.")]
    assert by_label(svc)["ocean"] == SCENES["sea"] + 2 and "sea" not in by_label(svc)
