"""Anonymous abuse is bounded: login throttling, upload rate and queue caps, closed event names."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import REVIEWER, make_client
from tests.utils.images import random_image_bytes


def test_login_is_throttled_per_user_name_with_retry_after(client: TestClient) -> None:
    answers = [client.post("/auth/token", data={"username": "victim", "password": f"guess-{i}"})
               for i in range(12)]
    codes = [a.status_code for a in answers]
    assert codes[:10] == [401] * 10 and codes[10:] == [429, 429], codes
    assert int(answers[-1].headers["retry-after"]) >= 1 and "try again in" in answers[-1].json()["detail"]
    ok = client.post("/auth/token", data={"username": REVIEWER, "password": "reviewer-password-1"})
    assert ok.status_code == 200  # another name from the same address is not locked out


def test_logins_are_throttled_per_address(client: TestClient) -> None:
    codes = [client.post("/auth/token", data={"username": f"user{i}", "password": "x" * 12}).status_code
             for i in range(32)]
    assert codes.count(429) >= 2 and 429 not in codes[:30], codes


def test_twenty_photos_at_once_are_fine_and_a_flood_is_throttled(
    monkeypatch: pytest.MonkeyPatch, trained_home: Path
) -> None:
    with make_client(monkeypatch, trained_home, uploads_per_minute="23") as client:
        with ThreadPoolExecutor(20) as pool:
            codes = list(pool.map(lambda i: client.post("/samples", files={"file": (
                "p.jpg", random_image_bytes(seed=5000 + i), "image/jpeg")}).status_code, range(20)))
        assert set(codes) == {201}, codes  # the default is 120 a minute; even 23 lets 20 at once through
        more = [client.post("/samples", files={"file": ("p.jpg", random_image_bytes(seed=6000 + i), "image/jpeg")})
                for i in range(4)]
    assert [m.status_code for m in more] == [201, 201, 201, 429]
    assert more[-1].headers["retry-after"]


def test_a_full_review_queue_answers_429_and_stores_nothing(
    monkeypatch: pytest.MonkeyPatch, trained_home: Path
) -> None:
    with make_client(monkeypatch, trained_home, max_pending_samples="1") as small:
        first = small.post("/samples", files={"file": ("a.jpg", random_image_bytes(seed=7001), "image/jpeg")})
        full = small.post("/samples", files={"file": ("b.jpg", random_image_bytes(seed=7002), "image/jpeg")})
    assert first.status_code in (201, 429)  # the queue may already hold samples of other tests
    assert full.status_code == 429 and "review queue is full" in full.json()["detail"]


def test_usage_events_accept_only_the_app_pages(client: TestClient) -> None:
    assert client.post("/events", json={"page": "predict", "action": "view"}).status_code == 204
    assert client.post("/events", json={"page": "evil_page_1", "action": "view"}).status_code == 422
    assert 'page="evil_page_1"' not in client.get("/metrics").text


def test_predictions_are_throttled_per_address_counting_each_image_of_a_batch(
    monkeypatch: pytest.MonkeyPatch, trained_home: Path
) -> None:
    """SPROUT_PREDICTIONS_PER_MINUTE counts images: /predict one, a /v2 infer its batch; beyond, 429 with
    Retry-After (the protocol's error JSON on /v2)."""
    photo = random_image_bytes(seed=8000)
    batch = {"inputs": [{"name": "images", "datatype": "BYTES", "shape": [2],
                         "data": [base64.b64encode(photo).decode()] * 2}]}
    infer = "/v2/models/sprout-classifier/infer"
    with make_client(monkeypatch, trained_home, predictions_per_minute="5") as client:
        codes = [client.post("/predict", files={"file": ("p.jpg", photo, "image/jpeg")}).status_code for _ in range(2)]
        codes.append(client.post(infer, json=batch).status_code)  # 4 of 5 used
        over = client.post(infer, json=batch)  # two images, one left
        late = client.post("/predict", files={"file": ("p.jpg", photo, "image/jpeg")})
    assert codes == [200, 200, 200], codes
    assert over.status_code == 429 and "Too many requests" in over.json()["error"], over.text
    assert late.status_code == 429 and "try again in" in late.json()["detail"], late.text
    assert int(over.headers["retry-after"]) >= 1 and int(late.headers["retry-after"]) >= 1
