"""Retention (``sprout gc``): a report changes nothing, ``apply`` deletes exactly what is expired or orphaned and
nothing still referenced, and a second run finds nothing; on SQLite with a local store and on PostgreSQL with
SeaweedFS."""

from __future__ import annotations

import io
import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pydantic import SecretStr
from sqlalchemy import func, select

from db import retention as rules
from db import rollouts
from db.models import (
    Base,
    Embedding,
    RecentPrediction,
    Review,
    RevokedToken,
    RolloutMode,
    RolloutObservation,
    RolloutOutcome,
    RunStatus,
    Sample,
    SampleSource,
    Split,
    TrainingRun,
    TrainingRunSample,
)
from model.core.settings import Settings
from model.data.fsck import fsck
from model.data.retention import RetentionPolicy, collect
from model.data.samples import add_sample
from model.review.actions import review_sample
from model.runtime.services import Services
from tests.servers import S3Server
from tests.utils.services import migrated_services

# Rows are dated against NOW, two days ahead of the clock: the objects the test writes are then two days old,
# past the orphans' 24-hour grace, on a store whose write times a test cannot set (S3).
NOW = datetime.now(UTC) + timedelta(days=2)
OLD, RECENT = NOW - timedelta(days=200), NOW - timedelta(days=1)
POLICY = RetentionPolicy(drift_window=10)
VECTOR = bytes(16)  # a 4-dimensional float32 embedding
BACKBONE = "efficientnet_lite0"
OUT_OF_FOLD = {"sample_ids": [1, 2], "labels": ["bird", "cat", "dog"], "proba": [[0.1, 0.8, 0.1], [0.2, 0.2, 0.6]]}


def png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (seed * 37 % 256, seed * 11 % 256, 160)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.server), "sqlite"])
def svc(request: pytest.FixtureRequest, tmp_path: Path) -> Services:
    if request.param == "sqlite":
        return migrated_services(Settings(home=tmp_path))
    s3: S3Server = request.getfixturevalue("s3_server")
    return migrated_services(Settings(  # type: ignore[call-arg]
        _env_file=None, home=tmp_path, database_url=request.getfixturevalue("fresh_pg_url"),
        s3_prefix=f"gc-{uuid.uuid4().hex[:12]}", s3_endpoint=s3.endpoint, s3_access_key=s3.access_key,
        s3_secret_key=SecretStr(s3.secret_key)))


@dataclass
class World:
    """The ids the assertions name."""

    samples: dict[str, int]
    runs: dict[str, int]
    rollouts: dict[str, int]
    orphan_key: str
    foreign_key: str


def add(svc: Services, seed: int, *, label: str | None = None, reject: bool = False,
        changed: datetime | None = None) -> int:
    """A sample (approved with ``label``, else pending; ``reject``: rejected by a reviewer), with an embedding."""
    with svc.session() as session:
        sample, _ = add_sample(session, svc.store, data=png(seed), source=SampleSource.UPLOAD, label=label)
        if reject:
            review_sample(session, svc.store, sample_id=sample.id, action="reject", reviewer="ann")
        session.add(Embedding(sha256=sample.sha256, backbone=BACKBONE, dim=4, vector=VECTOR, created_at=OLD))
        row = session.get(Sample, sample.id)
        assert row is not None
        if changed is not None:
            row.updated_at = changed
        session.commit()
        return sample.id


def run(svc: Services, *, status: RunStatus, finished: datetime, lineage: list[int], registered: str | None = None,
        gate_passed: bool | None = None) -> int:
    """A training run with its lineage and, when it succeeded, out-of-fold probabilities."""
    with svc.session() as session:
        row = TrainingRun(status=status, backbone=BACKBONE, labels=["bird", "cat", "dog"], params={},
                          registered_version=registered, gate_passed=gate_passed, finished_at=finished,
                          out_of_fold=OUT_OF_FOLD if status is RunStatus.SUCCEEDED else None)
        session.add(row)
        session.flush()
        session.add_all(TrainingRunSample(run_id=row.id, sample_id=s, split=Split.TRAIN, label="cat") for s in lineage)
        session.commit()
        return row.id


def rollout(svc: Services, version: str, *, ended: datetime | None, observations: int) -> int:
    with svc.session() as session:
        row = rollouts.start_rollout(session, challenger_version=version, champion_version="1",
                                     mode=RolloutMode.SHADOW, started_by="command line")
        rollouts.add_observations(session, [{"rollout_id": row.id, "sha256": f"{i:064x}", "answered_by": "champion"}
                                            for i in range(observations)])
        if ended is not None:
            assert rollouts.end_rollout(session, row.id, outcome=RolloutOutcome.ABORTED, reason="test",
                                        decided_by="rule")
            row.ended_at = ended
        session.commit()
        return row.id


def build(svc: Services) -> World:
    """Three labels; every kind of row and object that grows, some expired or orphaned, some referenced."""
    s = {"cat": add(svc, 1, label="cat"), "dog": add(svc, 2, label="dog"), "bird": add(svc, 3, label="bird"),
         "rejected_old": add(svc, 4, reject=True, changed=OLD),
         "rejected_recent": add(svc, 5, reject=True, changed=RECENT),
         "rejected_in_lineage": add(svc, 6, reject=True, changed=OLD),
         "rejected_group_head": add(svc, 7, reject=True, changed=OLD),
         "rejected_in_failed_run": add(svc, 8, reject=True, changed=OLD),
         "group_member": add(svc, 9)}
    with svc.session() as session:
        for name in ("rejected_group_head", "group_member"):
            row = session.get(Sample, s[name])
            assert row is not None
            row.duplicate_group = s["rejected_group_head"]
        session.commit()
    s["newest"] = add(svc, 10)
    runs = {
        "registered": run(svc, status=RunStatus.SUCCEEDED, finished=OLD, registered="1", gate_passed=True,
                          lineage=[s["dog"], s["bird"], s["rejected_in_lineage"]]),
        "failed_old": run(svc, status=RunStatus.FAILED, finished=OLD, lineage=[s["cat"], s["rejected_in_failed_run"]]),
        "failed_old_too": run(svc, status=RunStatus.FAILED, finished=OLD, lineage=[s["cat"], s["dog"], s["bird"]]),
        "refused_latest": run(svc, status=RunStatus.SUCCEEDED, finished=OLD, gate_passed=False, lineage=[s["cat"]]),
        "failed_recent": run(svc, status=RunStatus.FAILED, finished=RECENT, lineage=[s["cat"]]),
    }
    ro = {"ended_old": rollout(svc, "2", ended=OLD, observations=3),
          "ended_recent": rollout(svc, "3", ended=RECENT, observations=2),
          "open": rollout(svc, "4", ended=None, observations=2)}
    with svc.session() as session:
        session.add_all(RecentPrediction(created_at=OLD, model_version="1", backbone=BACKBONE, label="cat",
                                         confidence=0.9, embedding=VECTOR) for _ in range(12))
        session.add_all([RevokedToken(jti="expired", expires_at=OLD), RevokedToken(jti="valid", expires_at=NOW
                                                                                   + timedelta(hours=1)),
                         Embedding(sha256="e" * 64, backbone=BACKBONE, dim=4, vector=VECTOR, created_at=OLD),
                         Embedding(sha256="d" * 64, backbone=BACKBONE, dim=4, vector=VECTOR, created_at=NOW)])
        session.commit()
    orphan_key, foreign_key = f"pending/{'f' * 64}.png", "notes/readme.txt"
    svc.store.put(orphan_key, png(11))
    svc.store.put(foreign_key, b"not Sprout's")
    return World(s, runs, ro, orphan_key, foreign_key)


def snapshot(svc: Services) -> dict[str, Any]:
    """Rows per table and every object key."""
    with svc.session() as session:
        counts: dict[str, Any] = {m.__tablename__: session.scalar(select(func.count()).select_from(m))
                                     for m in Base.__subclasses__()}
    return counts | {"objects": sorted(svc.store.list())}


def found(report: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {r["name"]: (r["found"], r["bytes"]) for r in report["rules"]}


def test_gc_deletes_exactly_what_expired_and_nothing_referenced(svc: Services) -> None:
    world = build(svc)
    sizes = {}
    with svc.session() as session:
        for name in ("rejected_old", "rejected_in_failed_run"):
            row = session.get(Sample, world.samples[name])
            assert row is not None
            sizes[name] = (row.size_bytes, row.object_key)
    before = snapshot(svc)
    with svc.session() as session:
        report = collect(session, svc.store, POLICY, now=NOW).to_dict()
    assert snapshot(svc) == before  # a report changes nothing
    rejected_bytes = sum(size for size, _ in sizes.values()) + 2 * len(VECTOR)
    expected = {"recent_predictions": (2, 2 * len(VECTOR)), "revoked_tokens": (1, 0), "rollout_observations": (3, 0),
                "training_run_samples": (5, 0), "out_of_fold": (1, len(json.dumps(OUT_OF_FOLD))),
                "rejected_samples": (2, rejected_bytes),
                "embeddings": (1, len(VECTOR)), "objects": (1, len(png(11)))}
    assert found(report) == expected and report["applied"] is False and report["deleted"] == 0

    with svc.session() as session:
        applied = collect(session, svc.store, POLICY, apply=True, now=NOW).to_dict()
    assert found(applied) == expected
    assert {r["name"]: r["deleted"] for r in applied["rules"]} == {name: n for name, (n, _) in expected.items()}
    after = snapshot(svc)
    gone = {"recent_predictions": 2, "revoked_tokens": 1, "rollout_observations": 3, "training_run_samples": 5,
            "samples": 2, "embeddings": 3, "reviews": 2}
    assert {t: before[t] - after[t] for t in gone} == gone
    assert set(before["objects"]) - set(after["objects"]) == {
        world.orphan_key, *(key for _, key in sizes.values())}

    with svc.session() as session:
        kept = set(session.scalars(select(Sample.id)))
        assert kept == set(world.samples.values()) - {world.samples["rejected_old"],
                                                      world.samples["rejected_in_failed_run"]}
        assert not list(session.scalars(select(Review).where(Review.sample_id == world.samples["rejected_old"])))
        assert session.scalar(select(func.count()).select_from(Review)
                              .where(Review.sample_id == world.samples["rejected_recent"])) == 1
        lineage = {(r.run_id, r.sample_id) for r in session.scalars(select(TrainingRunSample))}
        assert {run for run, _ in lineage} == {world.runs[n] for n in ("registered", "refused_latest", "failed_recent")}
        with_out_of_fold = {r.id for r in session.scalars(select(TrainingRun)) if r.out_of_fold is not None}
        assert with_out_of_fold == {world.runs["refused_latest"]}  # the latest successful run's
        observed = {o.rollout_id for o in session.scalars(select(RolloutObservation))}
        assert observed == {world.rollouts["ended_recent"], world.rollouts["open"]}
        assert set(session.scalars(select(RevokedToken.jti))) == {"valid"}
        assert set(session.scalars(select(Embedding.sha256).where(Embedding.sha256.in_(["d" * 64, "e" * 64])))) \
            == {"d" * 64}
        assert session.scalar(select(func.min(RecentPrediction.id))) is not None
        assert fsck(session, svc.store, repair=False).missing == []  # every kept sample still has its image
    assert world.foreign_key in after["objects"]

    with svc.session() as session:
        again = collect(session, svc.store, POLICY, apply=True, now=NOW).to_dict()
    assert again["found"] == 0 and again["deleted"] == 0, again
    assert snapshot(svc) == after


def test_small_batches_delete_the_same_rows(svc: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of three rows: a batch of lineage spans two runs, and every rule still ends with nothing left."""
    build(svc)
    with svc.session() as session:
        report = collect(session, svc.store, POLICY, now=NOW).to_dict()
    monkeypatch.setattr(rules, "BATCH", 3)
    with svc.session() as session:
        applied = collect(session, svc.store, POLICY, apply=True, now=NOW).to_dict()
    assert found(applied) == found(report) and applied["deleted"] == report["found"] == 16
    with svc.session() as session:
        assert collect(session, svc.store, POLICY, now=NOW).to_dict()["found"] == 0


def test_zero_days_keep_everything_of_their_kind(svc: Services) -> None:
    build(svc)
    policy = RetentionPolicy(drift_window=10, rejected_days=0, rollout_observation_days=0, run_lineage_days=0)
    with svc.session() as session:
        report = found(collect(session, svc.store, policy, apply=True, now=NOW).to_dict())
    assert report["rejected_samples"] == report["rollout_observations"] == report["training_run_samples"] == (0, 0)
    assert report["recent_predictions"] == (2, 2 * len(VECTOR))


def test_recent_orphans_wait_out_the_grace(tmp_path: Path) -> None:
    svc = migrated_services(Settings(home=tmp_path))
    add(svc, 1, label="cat")
    add(svc, 2, label="dog")
    add(svc, 3, label="bird")
    fresh, stale = f"pending/{'a' * 64}.png", f"labeled/bird/{'b' * 64}.jpg"
    svc.store.put(fresh, png(4))
    svc.store.put(stale, png(5))
    old = (datetime.now(UTC) - timedelta(hours=25)).timestamp()
    os.utime(svc.settings.objects_dir / stale, (old, old))
    with svc.session() as session:
        report = collect(session, svc.store, RetentionPolicy(), apply=True).to_dict()
    assert found(report)["objects"] == (1, len(png(5)))
    assert fresh in set(svc.store.list()) and stale not in set(svc.store.list())


def objects_rule(report: dict[str, Any]) -> dict[str, Any]:
    return next(r for r in report["rules"] if r["name"] == "objects")


def old_orphans(svc: Services, n: int) -> list[str]:
    """``n`` images in Sprout's layout that no sample names, written two days ago."""
    keys = [f"labeled/cat/{i:064x}.png" for i in range(n)]
    old = (datetime.now(UTC) - timedelta(days=2)).timestamp()
    for key in keys:
        svc.store.put(key, b"x")
        os.utime(svc.settings.objects_dir / key, (old, old))
    return keys


def test_an_empty_database_deletes_no_image(tmp_path: Path) -> None:
    """Pointed at an empty database, every image looks orphaned: nothing is deleted."""
    svc = migrated_services(Settings(home=tmp_path))
    keys = old_orphans(svc, 3)
    with svc.session() as session:
        objects = objects_rule(collect(session, svc.store, RetentionPolicy(), apply=True).to_dict())
    assert objects["found"] == 3 and objects["deleted"] == 0 and "SPROUT_DATABASE_URL" in objects["refused"]
    assert sorted(svc.store.list()) == keys


def test_another_installations_database_deletes_no_image(tmp_path: Path) -> None:
    """A database whose samples' images are not in this store (another installation's) is refused."""
    svc = migrated_services(Settings(home=tmp_path))
    for seed, label in enumerate(("cat", "dog", "bird")):
        add(svc, seed, label=label)
    for key in list(svc.store.list()):
        svc.store.delete(key)  # the samples' images live in another store
    keys = old_orphans(svc, 2)
    with svc.session() as session:
        objects = objects_rule(collect(session, svc.store, RetentionPolicy(), apply=True).to_dict())
    assert objects["deleted"] == 0 and "only 0 of the database's 3 samples" in objects["refused"]
    assert sorted(svc.store.list()) == keys


def test_more_orphans_than_the_limit_wait_for_a_person(tmp_path: Path) -> None:
    """An older database restored beside a newer store makes every newer image an orphan: beyond the limit
    nothing is deleted until a person raises it."""
    svc = migrated_services(Settings(home=tmp_path))
    for seed, label in enumerate(("cat", "dog", "bird")):
        add(svc, seed, label=label)
    keys = old_orphans(svc, 5)
    with svc.session() as session:
        refused = objects_rule(collect(session, svc.store, RetentionPolicy(max_orphans=4), apply=True).to_dict())
    assert refused["found"] == 5 and refused["deleted"] == 0 and "--max-orphans" in refused["refused"]
    assert set(keys) <= set(svc.store.list())
    with svc.session() as session:
        allowed = objects_rule(collect(session, svc.store, RetentionPolicy(max_orphans=5), apply=True).to_dict())
    assert allowed["deleted"] == 5 and allowed["refused"] is None and not set(keys) & set(svc.store.list())
