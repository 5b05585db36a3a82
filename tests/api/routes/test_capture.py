"""Production capture: opt-in, within its caps across workers, never the same image twice, off the request path."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.state import app_state
from db import queries
from db.models import SampleSource, SampleStatus
from model.core.settings import Settings
from model.serving.capture import CapturePolicy, Capturer
from model.serving.predictor import PredictionResult
from tests.api.conftest import make_client
from tests.utils.images import random_image_bytes
from tests.utils.services import migrated_services


def textures(n: int, seed: int) -> list[bytes]:
    """Out-of-domain images: random noise textures, all different."""
    return [random_image_bytes("JPEG", size=(320, 240), seed=seed + i) for i in range(n)]


def captures(client: TestClient) -> list:
    with app_state(client.app).services.session() as session:
        return [s for s in queries.all_samples(session) if s.source is SampleSource.CAPTURE]


def capture_counts(client: TestClient) -> dict[str, float]:
    """``sprout_captures_total`` by result, as /metrics shows it."""
    found = re.findall(r'^sprout_captures_total\{result="(\w+)"\} (\S+)$', client.get("/metrics").text, re.M)
    return {result: float(value) for result, value in found}


def predict(client: TestClient, data: bytes):
    return client.post("/predict", files={"file": ("x.jpg", data, "image/jpeg")})


def test_capture_is_off_by_default(client: TestClient) -> None:
    before = len(captures(client))
    for data in textures(3, seed=500):
        assert predict(client, data).status_code == 200
    app_state(client.app).capture.drain()
    assert len(captures(client)) == before and not app_state(client.app).capture.policy.enabled


def test_a_burst_of_out_of_domain_predictions_captures_up_to_the_cap_and_no_more(
        monkeypatch: pytest.MonkeyPatch, trained_home: Path) -> None:
    with make_client(monkeypatch, trained_home) as probe:
        before = len(captures(probe))
    cap = before + 4  # the hourly cap counts every capture of the last hour
    with make_client(monkeypatch, trained_home, capture_below="1.0", capture_per_hour=str(cap)) as client:
        burst = textures(10, seed=600)
        for data in burst + burst[:3]:  # three of them twice
            resp = predict(client, data)
            assert resp.status_code == 200, resp.text
        app_state(client.app).capture.drain()
        found = captures(client)
        assert len(found) == cap, [(s.id, s.created_at) for s in found]
        new = found[before:]
        assert all(s.status.value == "pending" and s.predicted_label and s.confidence is not None for s in new)
        assert len({s.sha256 for s in new}) == len(new)
        metrics = client.get("/metrics").text
        assert 'sprout_captures_total{result="stored"} 4.0' in metrics
        assert 'sprout_captures_total{result="capped"}' in metrics


def test_captures_stop_at_the_review_queue_cap_like_uploads(monkeypatch: pytest.MonkeyPatch,
                                                             trained_home: Path) -> None:
    with make_client(monkeypatch, trained_home) as probe:
        with app_state(probe.app).services.session() as session:
            pending = queries.count_samples(session, status=SampleStatus.PENDING)
    with make_client(monkeypatch, trained_home, capture_below="1.0", capture_per_hour="1000",
                     max_pending_samples=str(pending + 2)) as client:
        before, counted = len(captures(client)), capture_counts(client)
        for data in textures(6, seed=650):
            assert predict(client, data).status_code == 200
        app_state(client.app).capture.drain()
        assert len(captures(client)) == before + 2
        with app_state(client.app).services.session() as session:
            assert queries.count_samples(session, status=SampleStatus.PENDING) == pending + 2
        after = capture_counts(client)  # the counters are the process's: compare with before
        assert (after["stored"] - counted.get("stored", 0), after["queue_full"] - counted.get("queue_full", 0)) \
            == (2, 4)
        resp = client.post("/samples", files={"file": ("y.jpg", textures(1, seed=660)[0], "image/jpeg")})
        assert resp.status_code == 429, resp.text


def test_only_confidence_below_the_threshold_is_captured(monkeypatch: pytest.MonkeyPatch,
                                                         trained_home: Path) -> None:
    # Two labels: a prediction's confidence is at least 0.5, so "below 0.5" captures nothing.
    with make_client(monkeypatch, trained_home, capture_below="0.5") as client:
        before = len(captures(client))
        for data in textures(4, seed=700):
            assert predict(client, data).status_code == 200
        app_state(client.app).capture.drain()
        assert len(captures(client)) == before
    policy = CapturePolicy(below=0.6, sample_rate=0.1)
    assert policy.wants(0.55, draw=0.9) and not policy.wants(0.65, draw=0.9) and policy.wants(0.99, draw=0.05)


@pytest.mark.integration
def test_two_workers_capturing_at_once_stay_within_the_cap(fresh_pg_url: str, tmp_path: Path) -> None:
    """Two capturers (as two API workers would) race on one PostgreSQL: the advisory lock keeps the cap."""
    svc = migrated_services(Settings(_env_file=None, home=tmp_path, database_url=fresh_pg_url))  # type: ignore[call-arg]
    try:
        policy = CapturePolicy(below=1.0, per_hour=6)
        workers = [Capturer(policy, svc.session, svc.store, max_pixels=svc.settings.max_image_pixels)
                   for _ in range(2)]
        images = textures(24, seed=800)
        result = PredictionResult(label="grass", confidence=0.51, probabilities={"dandelion": 0.49, "grass": 0.51})
        outcomes: list[str] = []

        def run(worker: Capturer, mine: list[bytes]) -> None:
            outcomes.extend(worker.capture(data, result) for data in mine)

        threads = [threading.Thread(target=run, args=(w, images[i::2])) for i, w in enumerate(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with svc.session() as session:
            stored = [s for s in queries.all_samples(session) if s.source is SampleSource.CAPTURE]
        assert len(stored) == 6 and outcomes.count("stored") == 6 and outcomes.count("capped") == 18
    finally:
        svc.close()
