"""A review racing a label change (issue 23, point 5), on PostgreSQL and SQLite: the change commits between the
reviewer's read of the labels and its compare-and-set. Whichever wins, no approved sample is left under a label
that was renamed or retired."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

import model.review.actions as actions
from db import queries
from db.models import LabelChange, ReviewAction, Sample, SampleSource, SampleStatus
from model.core.errors import ConflictError, InvalidLabelError
from model.core.settings import Settings
from model.data.importer import import_directory
from model.data.samples import add_sample
from model.review.actions import relabel_sample, review_sample
from model.review.taxonomy import rename_label, retire_label
from model.runtime.services import Services
from tests.utils.datasets import scenes_tree
from tests.utils.images import random_image_bytes
from tests.utils.services import migrated_services

SCENES = {"forest": 3, "glacier": 2, "sea": 2}
BLOCKED_S = 3.0  # how long the reviewer waits for the change it started: without the lock, it commits at once


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.server), "sqlite"])
def svc(request: pytest.FixtureRequest, tmp_path: Path) -> Services:
    url = request.getfixturevalue("fresh_pg_url") if request.param == "postgresql" else None
    services = migrated_services(Settings(home=tmp_path / "home", database_url=url))
    with services.session() as session:
        assert not import_directory(session, services.store, scenes_tree(tmp_path / "scenes", SCENES)).errors
    return services


def _decision(svc: Services, how: str) -> Callable[[], object]:
    """A reviewer filing a sample under ``sea``: approving a pending one predicted so, or relabelling a forest."""
    with svc.session() as session:
        if how == "review":
            sample, _ = add_sample(session, svc.store, data=random_image_bytes(seed=7), source=SampleSource.UPLOAD)
            sample.predicted_label, sample.confidence = "sea", 0.7
            session.commit()
            sample_id = sample.id
        else:
            sample_id = queries.approved_with_label(session, label="forest")[0].id

    def decide() -> object:
        with svc.session() as session:
            if how == "review":
                return review_sample(session, svc.store, sample_id=sample_id, action=ReviewAction.APPROVE,
                                     reviewer="r")
            return relabel_sample(session, svc.store, sample_id=sample_id, label="sea", reviewer="r")
    return decide


@pytest.mark.parametrize("change", ["rename", "retire"])
@pytest.mark.parametrize("how", ["review", "relabel"])
def test_a_change_committed_between_a_reviews_read_and_its_update_never_leaves_the_old_label(
        svc: Services, monkeypatch: pytest.MonkeyPatch, change: str, how: str) -> None:
    decide = _decision(svc, how)
    errors: list[BaseException] = []

    def change_labels() -> None:
        try:
            with svc.session() as session:
                if change == "rename":
                    rename_label(session, svc.store, label="sea", to="ocean", admin="boss")
                else:
                    retire_label(session, svc.store, label="sea", admin="boss")
        except ConflictError as exc:  # the review won: the change saw its approval and changed nothing
            errors.append(exc)

    racer = threading.Thread(target=change_labels)
    real = actions.current_label

    def read_then_race(session: object, label: str) -> str:
        today = real(session, label)  # type: ignore[arg-type]
        if racer.ident is None:  # the reviewer's first read: the change goes now
            racer.start()
            racer.join(BLOCKED_S)  # with the lock (PostgreSQL) it waits for this review's commit instead
        return today

    monkeypatch.setattr(actions, "current_label", read_then_race)
    try:
        decided = decide()
    except (ConflictError, InvalidLabelError) as exc:  # the change won: the reviewer is told, nothing changed
        decided = exc
    racer.join()
    with svc.session() as session:
        recorded = session.query(LabelChange).count()
        approved = Counter(s.label for s in queries.approved_samples(session))
    assert recorded == 1 or errors, "neither the change nor its refusal happened"
    if recorded:  # the change won: the old label is gone, and the review was refused
        assert approved["sea"] == 0, f"{change} of sea committed, yet approved: {dict(approved)}"
        assert isinstance(decided, ConflictError | InvalidLabelError), decided
        assert approved["ocean" if change == "rename" else "forest"] == (2 if change == "rename" else 3)
    else:  # the review won: it filed the sample under sea, and the change changed nothing
        assert isinstance(decided, Sample) and (decided.status, decided.label) == (SampleStatus.APPROVED, "sea")
        assert approved["sea"] == 3


@pytest.mark.parametrize("change", ["rename", "retire"])
def test_an_early_copy_removed_before_the_commit_is_copied_again_before_the_old_object_goes(
        svc: Services, monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    """A ``sprout fsck`` between the copies and the commit deletes the new copies as unreferenced; deleting the old
    objects after the commit must not then leave the samples with none."""
    import model.review.taxonomy as taxonomy

    with svc.session() as session:
        old = {s.id: s.object_key for s in queries.approved_with_label(session, label="sea")}
    real = taxonomy.crash_point

    def fsck_after_copy(name: str) -> None:
        if name == "move.after_copy":  # the rows still name the old keys: the new copies look unreferenced
            with svc.session() as other:
                named = {s.object_key for s in queries.all_samples(other)}
            for key in set(svc.store.list()) - named:
                svc.store.delete(key)
        real(name)

    monkeypatch.setattr(taxonomy, "crash_point", fsck_after_copy)
    with svc.session() as session:
        if change == "rename":
            rename_label(session, svc.store, label="sea", to="ocean", admin="boss")
        else:
            retire_label(session, svc.store, label="sea", admin="boss")
    keys = set(svc.store.list())
    with svc.session() as session:
        for sample_id, old_key in old.items():
            sample = session.get(Sample, sample_id)
            assert sample.object_key != old_key and sample.object_key in keys, f"{sample.object_key} is gone"
            assert old_key not in keys
            assert svc.store.get(sample.object_key)
