"""The drift scores and the window of recent predictions (bounded, shared, persistent, never in the way).

The end-to-end acceptance (a real model, shared-set photos vs generated textures through /predict) is in
``tests/api/routes/test_drift.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from db import prediction_window
from db.models import utcnow
from db.session import make_engine, make_sessionmaker
from model.core.settings import Settings
from model.monitoring.drift import DriftMonitor, Reference, assess, domain_auc, live_window, mmd_test, novel_share
from model.runtime.services import Services
from model.runtime.traffic import PredictionRecorder, row
from model.serving.predictor import PredictionResult
from tests.utils.services import migrated_services

DIM = 32


def clusters(n: int, *, shift: float = 0.0, seed: int = 0) -> np.ndarray:
    """Points around a fixed direction (``shift`` moves the centre along another axis)."""
    rng = np.random.default_rng(seed)
    centre = np.zeros(DIM)
    centre[0], centre[1] = 1.0, shift
    return (centre + 0.3 * rng.normal(size=(n, DIM))).astype(np.float32)


def result(i: int, *, version: str = "1", embedding: bool = True) -> PredictionResult:
    vector = np.full(DIM, float(i), dtype=np.float32) if embedding else None
    return PredictionResult(label="grass", confidence=0.9, probabilities={"grass": 0.9, "dandelion": 0.1},
                            model_version=version, embedding=vector, backbone="efficientnet_lite0")


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Services]:
    services = migrated_services(Settings(_env_file=None, home=tmp_path / "home"))  # type: ignore[call-arg]
    yield services
    services.close()


@pytest.mark.parametrize("score", [mmd_test, domain_auc], ids=["mmd", "auc"])
def test_each_score_flags_a_shift_and_not_a_fresh_sample(score) -> None:  # type: ignore[no-untyped-def]
    reference = clusters(120, seed=1)
    same, threshold = score(reference, clusters(40, seed=2), alpha=0.01, seed=0)
    assert same <= threshold
    shifted, threshold = score(reference, clusters(40, shift=0.8, seed=3), alpha=0.01, seed=0)
    assert shifted > threshold


def test_mmd_threshold_is_seeded() -> None:
    reference, live = clusters(60, seed=1), clusters(30, seed=2)
    assert mmd_test(reference, live, seed=7) == mmd_test(reference, live, seed=7)


def test_novel_share_counts_images_unlike_any_reference() -> None:
    reference = np.eye(DIM, dtype=np.float32)[:4]
    live = np.stack([np.eye(DIM)[0], np.eye(DIM)[1], np.eye(DIM)[10]]).astype(np.float32)
    assert novel_share(reference, live, min_similarity=0.5) == pytest.approx(1 / 3)


def test_too_few_predictions_never_drift_and_say_why() -> None:
    settings = Settings(_env_file=None, drift_min_predictions=30)  # type: ignore[call-arg]
    reference = Reference(version="1", backbone="b", embeddings=clusters(60, seed=1), mean_confidence=0.95)
    far = clusters(10, shift=3.0, seed=2)
    report = assess(reference, far, np.full(10, 0.6), settings)
    assert report.drift_score is not None and report.drift_score > (report.threshold or 0)
    assert report.drifted is False and "too few" in (report.reason or "") and report.n == 10
    assert report.mean_confidence == pytest.approx(0.6) and report.reference_mean_confidence == 0.95
    none = assess(None, far, np.full(10, 0.6), settings)
    assert none.drifted is False and none.drift_score is None and none.reason


def test_window_is_bounded_shared_by_writers_and_kept_across_restarts(svc: Services) -> None:
    first = PredictionRecorder(svc.sessions, keep=25)
    second_services = Services.from_settings(svc.settings)  # another worker on the same database
    second = PredictionRecorder(second_services.sessions, keep=25)
    for i in range(20):
        first.record(result(i))
        second.record(result(100 + i))
    assert first.flush() == 20 and second.flush() == 20
    second_services.close()
    restarted = Services.from_settings(svc.settings)
    with restarted.session() as session:
        rows = prediction_window.recent_predictions(session, model_version="1", limit=1000)
    restarted.close()
    assert len(rows) == 25  # the newest 25 of 40, from both writers
    kept = {int(np.frombuffer(r.embedding or b"", dtype=np.float32)[0]) for r in rows}
    assert kept == set(range(15, 20)) | set(range(100, 120))


def test_recording_never_raises_and_counts_what_it_drops(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'x.db'}")  # cannot even be opened
    recorder = PredictionRecorder(make_sessionmaker(engine), keep=100, capacity=5)
    for i in range(8):
        recorder.record(result(i))
    assert recorder.pending == 5 and recorder.dropped == 3  # the buffer is bounded
    assert recorder.flush() == 0  # database unavailable: dropped, counted, no error
    assert recorder.dropped == 8 and recorder.pending == 0 and recorder.written == 0
    engine.dispose()


def test_the_background_thread_flushes_and_stop_writes_the_rest(svc: Services) -> None:
    recorder = PredictionRecorder(svc.sessions, keep=100, flush_seconds=60, batch_size=1000)
    recorder.start()
    for i in range(3):
        recorder.record(result(i, embedding=i != 1))
    recorder.stop()
    assert recorder.written == 3 and recorder.pending == 0
    with svc.session() as session:
        rows = prediction_window.recent_predictions(session, model_version=None, limit=10)
    assert [r.embedding is None for r in rows] == [False, True, False]
    assert rows[0].backbone == "efficientnet_lite0" and rows[0].label == "grass" and rows[0].confidence == 0.9


def test_a_non_finite_prediction_is_not_recorded_and_its_batch_is(any_db: Services) -> None:
    """A NaN confidence (NULL in SQLite's NOT NULL column) failed the whole flush; on PostgreSQL it was stored
    and the drift report became NaN (500)."""
    recorder = PredictionRecorder(any_db.sessions, keep=100)
    infinite = np.full(DIM, np.inf, dtype=np.float32)
    for item in (result(0), replace(result(1), confidence=float("nan")), result(2),
                 replace(result(3), embedding=infinite), result(4)):
        recorder.record(item)
    assert recorder.flush() == 3 and recorder.written == 3 and recorder.dropped == 2
    with any_db.session() as session:
        rows = prediction_window.recent_predictions(session, model_version="1", limit=10)
    assert sorted(int(np.frombuffer(r.embedding or b"", dtype=np.float32)[0]) for r in rows) == [0, 2, 4]


def test_the_window_skips_non_finite_rows_already_stored(any_db: Services) -> None:
    """Rows written before non-finite results were refused do not make the report NaN."""
    good = [recorder_row(i) for i in range(3)]
    bad = [recorder_row(9, embedding=np.full(DIM, np.inf, dtype=np.float32))]
    if any_db.settings.resolved_database_url.startswith("postgresql"):  # SQLite cannot store a NaN REAL
        bad.append(recorder_row(8) | {"confidence": float("nan")})
    with any_db.session() as session:
        prediction_window.add_recent_predictions(session, good + bad)
        session.commit()
    live, confidences = live_window(any_db, "1", None)
    assert len(live) == 3 and np.isfinite(live).all() and np.isfinite(confidences).all()


def recorder_row(i: int, *, embedding: np.ndarray | None = None) -> dict[str, object]:
    """The table row of ``result(i)``, as the recorder writes it."""
    item = result(i) if embedding is None else replace(result(i), embedding=embedding)
    return row(utcnow(), item)


@pytest.mark.server
def test_the_report_follows_predictions_another_replica_commits_late(fresh_pg_url: str, tmp_path: Path) -> None:
    """Two replicas' writers: one takes its ids first and commits last. The background report was recomputed only
    when the newest id moved, so it never counted the late rows (until the next prediction, however long)."""
    svc = migrated_services(Settings(_env_file=None, home=tmp_path / "home",  # type: ignore[call-arg]
                                     database_url=fresh_pg_url))
    monitor = DriftMonitor(svc, lambda: "1")
    with svc.session() as late, svc.session() as early:
        prediction_window.add_recent_predictions(late, [recorder_row(i) for i in range(3)])  # ids 1-3, uncommitted
        prediction_window.add_recent_predictions(early, [recorder_row(i) for i in range(3, 5)])  # ids 4-5
        early.commit()
        assert monitor.compute(force=False).n == 2
        late.commit()
    assert monitor.compute(force=False).n == 5
    svc.close()
