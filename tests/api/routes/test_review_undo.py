"""POST /admin/samples/{id}/undo and GET /admin/reviews/recent: a reviewer takes back their own decision within the
window, sees their latest decisions and which can still be undone."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from db.models import Review, Sample
from model.core.settings import Settings
from model.runtime.services import Services
from tests.api.conftest import ADMIN, PASSWORD, REVIEWER, make_client
from tests.utils.paths import SCENES


def scene(label: str, i: int) -> bytes:
    return sorted((SCENES / label).glob("*.jpg"))[i].read_bytes()


def submit(client: TestClient, label: str, i: int) -> tuple[int, str]:
    """A scene photo suggested as ``label``: its id and the model's prediction (dandelion or grass)."""
    resp = client.post("/samples", files={"file": (f"{label}.jpg", scene(label, i), "image/jpeg")},
                       data={"label": label})
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"]), resp.json()["predicted_label"]


def undo_count(client: TestClient) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith('sprout_reviews_total{action="undo"}'):
            return float(line.split()[-1])
    raise AssertionError("no undo series in /metrics")


def recent(client: TestClient, headers: dict[str, str], **params: int) -> dict:
    resp = client.get("/admin/reviews/recent", params=params, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_a_reviewer_undoes_their_own_decision_and_the_recent_list_says_so(
        client: TestClient, reviewer_headers: dict[str, str]) -> None:
    sid, predicted = submit(client, "forest", 7)
    other = "grass" if predicted == "dandelion" else "dandelion"
    decided = client.post(f"/admin/samples/{sid}/review", json={"action": "approve", "label": other},
                          headers=reviewer_headers)
    assert decided.status_code == 200 and decided.json()["status"] == "approved", decided.text
    listed = recent(client, reviewer_headers, limit=3)
    assert listed["undo_seconds"] == 300 and len(listed["reviews"]) <= 3
    first = listed["reviews"][0]
    assert {k: first[k] for k in ("sample_id", "action", "old_label", "new_label", "undoable")} == {
        "sample_id": sid, "action": "correct", "old_label": "forest", "new_label": other, "undoable": True}
    created, until = datetime.fromisoformat(first["created_at"]), datetime.fromisoformat(first["undoable_until"])
    assert until - created == timedelta(seconds=300) and created.tzinfo is not None

    before = undo_count(client)
    undone = client.post(f"/admin/samples/{sid}/undo", headers=reviewer_headers)
    assert undone.status_code == 200, undone.text
    body = undone.json()
    assert (body["id"], body["status"], body["label"], body["reviewed_by"], body["suggested_label"]) == (
        sid, "pending", None, None, "forest")
    assert undo_count(client) == before + 1
    assert client.get(f"/admin/samples/{sid}/image", headers=reviewer_headers).status_code == 200  # moved back
    after = recent(client, reviewer_headers)["reviews"][0]
    assert (after["sample_id"], after["undoable"], after["undoable_until"]) == (sid, False, None)

    again = client.post(f"/admin/samples/{sid}/undo", headers=reviewer_headers)
    assert again.status_code == 409 and "already undone" in again.json()["detail"]
    assert client.post("/admin/samples/999999/undo", headers=reviewer_headers).status_code == 404
    assert client.post(f"/admin/samples/{sid}/undo").status_code == 401
    assert client.get("/admin/reviews/recent").status_code == 401
    for limit in (0, 51):
        assert client.get("/admin/reviews/recent", params={"limit": limit}, headers=reviewer_headers
                          ).status_code == 422


def test_another_reviewers_decision_is_403_and_a_passed_window_409(
        client: TestClient, reviewer_headers: dict[str, str], admin_headers: dict[str, str],
        trained_home: Path) -> None:
    sid, _ = submit(client, "sea", 8)
    assert client.post(f"/admin/samples/{sid}/review", json={"action": "reject"},
                       headers=admin_headers).status_code == 200
    theirs = client.post(f"/admin/samples/{sid}/undo", headers=reviewer_headers)
    assert theirs.status_code == 403 and f"last decided by {ADMIN}" in theirs.json()["detail"]
    assert sid not in [r["sample_id"] for r in recent(client, reviewer_headers, limit=50)["reviews"]]
    mine = recent(client, admin_headers)["reviews"][0]
    assert (mine["sample_id"], mine["action"], mine["new_label"], mine["undoable"]) == (sid, "reject", None, True)

    svc = Services.from_settings(Settings(home=trained_home))  # five minutes and a second pass, without sleeping
    try:
        with svc.session() as session:
            decision, sample = session.query(Review).filter(Review.sample_id == sid).one(), session.get(Sample, sid)
            assert sample is not None and sample.reviewed_at == decision.created_at
            decision.created_at = sample.reviewed_at = decision.created_at - timedelta(seconds=301)
            session.commit()
    finally:
        svc.close()
    late = recent(client, admin_headers)["reviews"][0]
    assert (late["sample_id"], late["undoable"], late["undoable_until"]) == (sid, False, None)
    refused = client.post(f"/admin/samples/{sid}/undo", headers=admin_headers)
    assert refused.status_code == 409
    assert refused.json()["detail"] == ("The undo window (5 minutes) has passed; an admin can relabel it or send it "
                                        "back.")
    sample = client.get("/admin/samples", params={"status": "rejected", "order": "newest", "limit": 200},
                        headers=admin_headers).json()["data"]
    assert sid in [s["id"] for s in sample]


def test_undo_turned_off(monkeypatch: pytest.MonkeyPatch, trained_home: Path) -> None:
    with make_client(monkeypatch, trained_home, review_undo_seconds="0") as off:
        token = off.post("/auth/token", data={"username": REVIEWER, "password": PASSWORD}).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        sid, _ = submit(off, "glacier", 9)
        assert off.post(f"/admin/samples/{sid}/review", json={"action": "reject"}, headers=headers).status_code == 200
        listed = recent(off, headers)
        assert listed["undo_seconds"] == 0 and listed["reviews"][0]["sample_id"] == sid
        assert listed["reviews"][0]["undoable"] is False
        refused = off.post(f"/admin/samples/{sid}/undo", headers=headers)
        assert refused.status_code == 409 and "Undo is turned off" in refused.json()["detail"]
