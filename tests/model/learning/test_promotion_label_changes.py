"""A candidate trained before a label change is never promoted (issue 23, point 5): its test labels are the old
names, so the gate's comparison and the model's outputs would be yesterday's taxonomy."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from db.models import LabelChange, LabelChangeKind, RunStatus, TrainingRun, utcnow
from model.core.errors import ConflictError
from model.core.settings import Settings
from model.data.importer import import_directory
from model.learning.pipeline import train_candidate
from model.learning.promotion import promote_run, train
from model.review.taxonomy import rename_label
from tests.utils.datasets import colour_dataset
from tests.utils.services import migrated_services


def test_a_rename_while_a_candidate_trains_refuses_its_promotion_and_the_retrain_uses_the_new_name(
        tmp_path: Path) -> None:
    svc = migrated_services(Settings(home=tmp_path / "home"))
    with svc.session() as session:
        import_directory(session, svc.store, colour_dataset(tmp_path / "colours"))
    candidate = train_candidate(svc, force=True)  # in flight when the admin renames: its labels are read
    assert candidate.gate.passed and "navy" in candidate.labels
    with svc.session() as session:
        rename_label(session, svc.store, label="navy", to="blue", admin="boss")
    with pytest.raises(ConflictError, match="labels changed while it trained: rename navy → blue by boss; the "
                                            "forced retrain after the change trains on today's labels"):
        promote_run(svc, candidate.run_id)
    assert svc.registry.champion() is None and svc.registry.versions() == []  # nothing registered
    with svc.session() as session:
        run = session.get(TrainingRun, candidate.run_id)
        assert run.gate_passed is False and "labels changed while it trained" in run.gate_reason
        assert run.registered_version is None and not run.promoted
    retrained = train(svc, force=True)
    assert retrained.promoted and retrained.labels == ["blue", "crimson", "forest"]


def test_a_candidate_with_an_old_label_name_is_refused_even_when_the_change_is_dated_before_its_start(
        tmp_path: Path) -> None:
    """A change is dated when its transaction starts, and a run may read the samples before that commits."""
    svc = migrated_services(Settings(home=tmp_path / "home"))
    now = utcnow()
    with svc.session() as session:
        session.add(LabelChange(kind=LabelChangeKind.RENAME, label="sea", into="ocean", changed_by="boss",
                                approved=2, pending=0, created_at=now - timedelta(seconds=1)))
        run = TrainingRun(backbone="b", labels=["forest", "sea"], status=RunStatus.SUCCEEDED, gate_passed=True,
                          gate_reason="passed", started_at=now)
        session.add(run)
        session.commit()
        run_id = run.id
    with pytest.raises(ConflictError, match="labels changed while it trained: rename sea → ocean by boss"):
        promote_run(svc, run_id)
    with svc.session() as session:
        assert session.get(TrainingRun, run_id).gate_passed is False
