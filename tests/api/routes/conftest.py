"""Fixtures of the route tests: reviewers' and admins' bearer tokens (the Redis server of the shared rate-limit
store is a session fixture of tests/conftest.py)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import ADMIN, ADMIN_PASSWORD, PASSWORD, REVIEWER


@pytest.fixture
def reviewer_headers(client: TestClient) -> dict[str, str]:
    resp = client.post("/auth/token", data={"username": REVIEWER, "password": PASSWORD})
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


@pytest.fixture
def admin_headers(client: TestClient) -> dict[str, str]:
    resp = client.post("/auth/token", data={"username": ADMIN, "password": ADMIN_PASSWORD})
    assert resp.status_code == 200 and resp.json()["is_admin"] is True, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}
