"""Fixtures of the route tests: reviewers' and admins' bearer tokens, and a Redis server for the shared
rate-limit store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests import servers
from tests.api.conftest import ADMIN, ADMIN_PASSWORD, PASSWORD, REVIEWER
from tests.utils.markers import needs


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


@pytest.fixture(scope="session")
@needs("server")
def redis_server() -> Iterator[str]:
    """A throwaway Redis server (password, no persistence): its ``redis://:password@127.0.0.1:PORT/0`` URL.

    Shared by the whole session: use keys of your own, or empty it after the test.
    """
    with servers.redis_server() as url:
        yield url
