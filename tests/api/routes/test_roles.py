"""Roles that mean something: promote, roll back and forced retrains need an admin; disabled accounts stop."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from model.core.accounts import set_active, set_admin, set_password
from model.core.settings import Settings
from model.runtime.services import Services
from tests.api.conftest import REVIEWER


def test_a_reviewer_cannot_promote_roll_back_or_force_a_retrain(client: TestClient, reviewer_headers: dict) -> None:
    promote = client.post("/admin/models/1/promote", headers=reviewer_headers)
    assert promote.status_code == 403 and promote.json() == {"detail": "Only an admin can do this."}
    forced = client.post("/admin/retrain", json={"force": True}, headers=reviewer_headers)
    assert forced.status_code == 403 and "admin" in forced.json()["detail"]
    plain = client.post("/admin/retrain", json={"force": False}, headers=reviewer_headers)
    assert plain.status_code == 503 and "Airflow is not configured" in plain.json()["detail"]  # allowed, no Airflow


def test_an_admin_can_promote_and_force(client: TestClient, admin_headers: dict) -> None:
    assert client.post("/admin/models/1/promote", headers=admin_headers).status_code == 200
    forced = client.post("/admin/retrain", json={"force": True}, headers=admin_headers)
    assert forced.status_code == 503  # past the role check; no Airflow here


def test_disabling_an_account_stops_its_token_at_once(client: TestClient, reviewer_headers: dict,
                                                       trained_home: Path) -> None:
    assert client.get("/admin/stats", headers=reviewer_headers).status_code == 200
    svc = Services.from_settings(Settings(home=trained_home))
    try:
        with svc.session() as session:
            set_active(session, username=REVIEWER, active=False)
        assert client.get("/admin/stats", headers=reviewer_headers).status_code == 401
        login = client.post("/auth/token", data={"username": REVIEWER, "password": "reviewer-password-1"})
        assert login.status_code == 401
    finally:
        with svc.session() as session:
            set_active(session, username=REVIEWER, active=True)
        svc.close()
    assert client.get("/admin/stats", headers=reviewer_headers).status_code == 401  # re-enabling revives no token
    login = client.post("/auth/token", data={"username": REVIEWER, "password": "reviewer-password-1"})
    assert client.get("/admin/stats", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
                      ).status_code == 200


def test_set_admin_and_set_password(client: TestClient, trained_home: Path) -> None:
    svc = Services.from_settings(Settings(home=trained_home))
    try:
        with svc.session() as session:
            set_admin(session, username=REVIEWER, admin=True)
        token = client.post("/auth/token", data={"username": REVIEWER, "password": "reviewer-password-1"}).json()
        assert token["is_admin"] is True
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        assert client.post("/admin/models/1/promote", headers=headers).status_code == 200
        with svc.session() as session:
            set_admin(session, username=REVIEWER, admin=False)
        assert client.post("/admin/models/1/promote", headers=headers).status_code == 403  # role read per request
        with svc.session() as session:
            set_password(session, username=REVIEWER, password="a-brand-new-password")
        assert client.post("/admin/models/1/promote", headers=headers).status_code == 401  # its sessions ended
        assert client.post("/auth/token", data={"username": REVIEWER, "password": "a-brand-new-password"}
                           ).status_code == 200
    finally:
        with svc.session() as session:
            set_admin(session, username=REVIEWER, admin=False)
            set_password(session, username=REVIEWER, password="reviewer-password-1")
        svc.close()


def test_only_an_admin_relabels_or_unapproves(client: TestClient, reviewer_headers: dict, admin_headers: dict) -> None:
    approved = client.get("/admin/samples", params={"status": "approved", "limit": 1},
                          headers=reviewer_headers).json()["data"][0]
    other = "grass" if approved["label"] == "dandelion" else "dandelion"
    refused = client.post(f"/admin/samples/{approved['id']}/relabel", json={"label": other}, headers=reviewer_headers)
    assert refused.status_code == 403
    moved = client.post(f"/admin/samples/{approved['id']}/relabel", json={"label": other}, headers=admin_headers)
    assert moved.status_code == 200 and moved.json()["label"] == other and moved.json()["reviewed_by"] == "admin"
    back = client.post(f"/admin/samples/{approved['id']}/relabel", json={"label": None}, headers=admin_headers)
    assert back.status_code == 200 and back.json()["status"] == "pending" and back.json()["label"] is None
    again = client.post(f"/admin/samples/{approved['id']}/relabel", json={"label": other}, headers=admin_headers)
    assert again.status_code == 409 and "not approved" in again.json()["detail"]
    restored = client.post(f"/admin/samples/{approved['id']}/review", json={"action": "approve",
                                                                           "label": approved["label"]},
                           headers=reviewer_headers)
    assert restored.status_code == 200 and restored.json()["status"] == "approved"
    assert client.get("/admin/stats", headers=reviewer_headers).json()["warnings"] == []
