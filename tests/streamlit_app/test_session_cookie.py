"""The Streamlit server's ``/session`` routes (the real route functions under Starlette's test client) and which
session cookie a page may be restored from."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from streamlit_app import cookie

HEADERS = {"X-Sprout-Session": "1"}


@pytest.fixture
def routes(monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.delenv("SPROUT_UI_COOKIE_SECURE", raising=False)
    return TestClient(Starlette(routes=cookie.routes()))


def chunks(body: bytes, size: int = 64) -> Iterator[bytes]:
    """A request body sent chunked: no Content-Length to refuse it by."""
    for start in range(0, len(body), size):
        yield body[start:start + size]


def test_a_chunked_body_over_1_kb_is_refused(routes: TestClient) -> None:
    handoff = cookie.HANDOFFS.offer("a-token", 60)
    padded = b'{"handoff": "' + handoff.encode() + b'", "pad": "' + b"x" * 2048 + b'"}'
    big = routes.post("/session", content=chunks(padded), headers=HEADERS)
    assert big.status_code == 413 and "set-cookie" not in big.headers
    small = routes.post("/session", content=chunks(b'{"handoff": "' + handoff.encode() + b'"}'), headers=HEADERS)
    assert small.status_code == 204 and small.cookies.get(cookie.PLAIN_NAME) == "a-token"  # plain http


def test_over_https_only_the_host_cookie_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPROUT_UI_COOKIE_SECURE", raising=False)
    planted = {cookie.PLAIN_NAME: "planted-token"}
    assert cookie.read(planted, secure=cookie.served_securely("https", {})) is None
    assert cookie.read(planted, secure=cookie.served_securely("http", {"X-Forwarded-Proto": "https"})) is None
    assert cookie.read({**planted, cookie.SECURE_NAME: "own-token"}, secure=True) == "own-token"
    assert cookie.read(planted, secure=cookie.served_securely("http", {})) == "planted-token"  # plain http
    monkeypatch.setenv("SPROUT_UI_COOKIE_SECURE", "true")
    assert cookie.read(planted, secure=cookie.served_securely("http", {})) is None
