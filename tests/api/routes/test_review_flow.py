"""Samples, auth, the review queue, stats, models, promote: every route, every auth failure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from fastapi.testclient import TestClient

from api.state import app_state
from model.core.security import create_access_token
from tests.api.conftest import ADMIN, PASSWORD, REVIEWER
from tests.utils.images import dataset_images, random_image_bytes


def upload(client: TestClient, data: bytes, **form: str):
    return client.post("/samples", files={"file": ("../../x.jpg", data, "image/jpeg")}, data=form)


def test_submit_sample_stores_pending_with_prediction_and_dedups(client: TestClient,
                                                                 reviewer_headers: dict[str, str]) -> None:
    data = dataset_images("grass", 60)[-1].read_bytes()
    first = upload(client, data, label="grass")
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["status"] == "pending" and body["suggested_label"] == "grass"
    assert body["predicted_label"] in {"dandelion", "grass"} and 0.5 <= body["confidence"] <= 1
    assert body["predicted_by_version"] == "1" and body["source"] == "upload"
    assert "split" not in body and "label" not in body and "reviewed_by" not in body  # the uploader learns no split
    again = upload(client, data)  # an anonymous duplicate's receipt names no existing sample
    assert again.status_code == 200 and {k for k, v in again.json().items() if v not in (None, [])} == {"duplicate"}
    to_reviewer = client.post("/samples", files={"file": ("x.jpg", data, "image/jpeg")}, headers=reviewer_headers)
    assert to_reviewer.status_code == 200 and to_reviewer.json()["id"] == body["id"]
    assert {k for k, v in to_reviewer.json().items() if v not in (None, [])} == {"id", "status", "duplicate"}
    bad_label = upload(client, random_image_bytes(seed=9), label="../../etc")
    assert bad_label.status_code == 422 and "Invalid label" in bad_label.json()["detail"]
    assert upload(client, b"GIF89a broken").status_code == 400


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/admin/samples"), ("get", "/admin/samples/1/image"), ("post", "/admin/samples/1/review"),
     ("get", "/admin/stats"), ("post", "/admin/models/1/promote"), ("get", "/auth/me"), ("post", "/auth/logout")],
)
def test_admin_routes_refuse_missing_wrong_and_expired_tokens(client: TestClient, method: str, path: str) -> None:
    key = app_state(client.app).signing_key
    expired = create_access_token(subject=REVIEWER, key=key, minutes=1, now=datetime.now(UTC) - timedelta(hours=2))
    forged = create_access_token(subject=REVIEWER, key="not-the-key" * 4, minutes=5)
    ghost = create_access_token(subject="nobody", key=key, minutes=5)
    for headers in ({}, {"Authorization": f"Bearer {expired}"}, {"Authorization": f"Bearer {forged}"},
                    {"Authorization": f"Bearer {ghost}"}, {"Authorization": "Bearer garbage"}):
        resp = getattr(client, method)(path, headers=headers, **({"json": {"action": "reject"}} if method == "post"
                                                                   else {}))
        assert resp.status_code == 401, (headers, resp.text)
        assert resp.headers["www-authenticate"] == "Bearer"
        assert resp.json() == {"detail": "Could not validate credentials."}


def test_login_refuses_wrong_password_and_unknown_user(client: TestClient) -> None:
    for username, password in ((REVIEWER, "wrong-password"), ("nobody", PASSWORD), (REVIEWER, "")):
        resp = client.post("/auth/token", data={"username": username, "password": password})
        assert resp.status_code in (401, 422)
    ok = client.post("/auth/token", data={"username": REVIEWER, "password": PASSWORD}).json()
    assert ok["token_type"] == "bearer" and ok["expires_in"] == 3600 and ok["username"] == REVIEWER


def test_me_names_the_reviewer_and_logout_revokes_only_that_token(client: TestClient) -> None:
    def log_in() -> str:
        return client.post("/auth/token", data={"username": REVIEWER, "password": PASSWORD}).json()["access_token"]

    kept, ended = log_in(), log_in()
    me = client.get("/auth/me", headers={"Authorization": f"Bearer {ended}"})
    assert me.status_code == 200, me.text
    assert me.json()["username"] == REVIEWER and me.json()["is_admin"] is False
    assert 3590 <= me.json()["expires_in"] <= 3600
    assert client.post("/auth/logout", headers={"Authorization": f"Bearer {ended}"}).status_code == 204
    for path in ("/auth/me", "/admin/stats"):
        assert client.get(path, headers={"Authorization": f"Bearer {ended}"}).status_code == 401
    assert client.post("/auth/logout", headers={"Authorization": f"Bearer {ended}"}).status_code == 401
    assert client.post("/auth/logout").status_code == 401
    assert client.get("/auth/me", headers={"Authorization": f"Bearer {kept}"}).status_code == 200  # another login
    key = app_state(client.app).signing_key
    no_id = jwt.encode({"sub": REVIEWER, "exp": datetime.now(UTC) + timedelta(minutes=5)}, key, algorithm="HS256")
    assert client.get("/auth/me", headers={"Authorization": f"Bearer {no_id}"}).status_code == 401  # not revocable


def test_review_queue_least_confident_first_then_decisions(client: TestClient, reviewer_headers: dict) -> None:
    for path in dataset_images("dandelion", 70)[-6:]:
        assert upload(client, path.read_bytes()).status_code in (200, 201)
    queue = client.get("/admin/samples", params={"status": "pending", "order": "uncertainty", "limit": 50},
                       headers=reviewer_headers)
    assert queue.status_code == 200
    items = queue.json()["data"]
    assert queue.json()["count"] >= 6 and all(s["status"] == "pending" for s in items)
    # the unfamiliar first (other tests' odd uploads), then the least confident
    order = [(s["predicted_unfamiliar"] is not True, s["confidence"] is not None, s["confidence"] or 0.0)
             for s in items]
    assert order == sorted(order)
    first, second, third = items[0], items[1], items[2]
    image = client.get(f"/admin/samples/{first['id']}/image", headers=reviewer_headers)
    assert image.status_code == 200 and image.headers["content-type"] == first["content_type"]
    assert image.content[:2] == b"\xff\xd8"

    stats_before = client.get("/admin/stats", headers=reviewer_headers).json()
    approved = client.post(f"/admin/samples/{first['id']}/review", json={"action": "approve"},
                           headers=reviewer_headers)
    assert approved.status_code == 200 and approved.json()["label"] == first["predicted_label"]
    assert approved.json()["reviewed_by"] == REVIEWER
    other = "grass" if second["predicted_label"] == "dandelion" else "dandelion"
    corrected = client.post(f"/admin/samples/{second['id']}/review", json={"action": "approve", "label": other},
                            headers=reviewer_headers)
    assert corrected.json()["label"] == other and corrected.json()["status"] == "approved"
    rejected = client.post(f"/admin/samples/{third['id']}/review", json={"action": "reject"},
                           headers=reviewer_headers)
    assert rejected.json()["status"] == "rejected"
    twice = client.post(f"/admin/samples/{third['id']}/review", json={"action": "approve"},
                        headers=reviewer_headers)
    assert twice.status_code == 409 and "already reviewed" in twice.json()["detail"]
    missing = client.post("/admin/samples/999999/review", json={"action": "approve"}, headers=reviewer_headers)
    assert missing.status_code == 404 and missing.json() == {"detail": "Sample 999999 not found."}
    bad = client.post(f"/admin/samples/{items[3]['id']}/review", json={"action": "delete"}, headers=reviewer_headers)
    assert bad.status_code == 422

    stats = client.get("/admin/stats", headers=reviewer_headers).json()
    assert stats["pending"] == stats_before["pending"] - 3
    assert stats["approved_since_last_run"] == stats_before["approved_since_last_run"] + 2
    assert stats["min_new_samples"] == 10 and stats["champion_version"] == "1"
    metrics = client.get("/metrics").text
    assert 'sprout_reviews_total{action="correct"}' in metrics and 'sprout_samples{status="pending"}' in metrics


def test_a_plain_approve_stores_the_prediction_not_the_uploaders_suggestion(
        client: TestClient, reviewer_headers: dict) -> None:
    sample = upload(client, dataset_images("dandelion", 75)[-1].read_bytes(), label="moss").json()
    assert sample["suggested_label"] == "moss" and sample["predicted_label"] in {"dandelion", "grass"}
    approved = client.post(f"/admin/samples/{sample['id']}/review", json={"action": "approve"},
                           headers=reviewer_headers)
    assert approved.status_code == 200 and approved.json()["label"] == sample["predicted_label"], approved.text


def test_models_and_promote(client: TestClient, admin_headers: dict) -> None:
    models = client.get("/models").json()
    assert models["champion"] == "1" and models["serving"] == "1"
    assert models["versions"][0]["version"] == "1" and models["versions"][0]["is_champion"]
    assert models["runs"][0]["gate_passed"] is True and "≥" in models["runs"][0]["gate_reason"]
    assert models["versions"][0]["metrics"]["accuracy"] >= 0.5
    unknown = client.post("/admin/models/42/promote", headers=admin_headers)
    assert unknown.status_code == 404 and "42" in unknown.json()["detail"]
    same = client.post("/admin/models/1/promote", headers=admin_headers)
    assert same.status_code == 200 and same.json() == {"previous": "1", "champion": "1"}
    # every change of the champion is recorded: the first by its training run, this one with the admin's name
    changes = client.get("/models").json()["changes"]
    assert {k: changes[0][k] for k in ("kind", "version", "previous", "changed_by")} == {
        "kind": "promoted", "version": "1", "previous": "1", "changed_by": ADMIN}
    first = changes[-1]
    assert first["kind"] == "run" and first["version"] == "1" and first["previous"] is None
    assert first["changed_by"] == f"run {first['run_id']}"


def test_health_readiness_metrics_and_usage_events(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "storage": "ok",
                                                                   "model": "version 1"}
    client.post("/predict", files={"file": ("a.jpg", dataset_images("grass", 2)[1].read_bytes(), "image/jpeg")})
    assert client.post("/events", json={"page": "predict", "action": "view"}).status_code == 204
    assert client.post("/events", json={"page": "predict", "action": "predict_click"}).status_code == 204
    assert client.post("/events", json={"page": "<script>", "action": "view"}).status_code == 422
    text = client.get("/metrics").text
    for name in ('sprout_api_requests_total{method="POST",route="/predict",status="200"}',
                 "sprout_api_request_duration_seconds_bucket", "sprout_predictions_total{label=",
                 "sprout_prediction_confidence_bucket", "sprout_model_version 1.0",
                 'sprout_ui_page_views_total{page="predict"}', "sprout_ui_predict_clicks_total",
                 "sprout_uploads_total"):
        assert name in text, name
    assert client.get("/openapi.json").json()["paths"]["/predict"]["post"]["responses"]["503"]


def test_an_upload_is_decoded_once(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The model's decode also checks the image and gives its perceptual hash: one pixel decode per upload."""
    from model.data import images

    calls: list[int] = []
    decode = images._decode_pixels

    def counting(*args: object) -> object:
        calls.append(1)
        return decode(*args)

    monkeypatch.setattr(images, "_decode_pixels", counting)
    resp = upload(client, dataset_images("dandelion", 130)[-1].read_bytes())
    assert resp.status_code == 201 and resp.json()["predicted_label"], resp.text
    assert len(calls) == 1
