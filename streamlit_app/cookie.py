"""The session cookie, server side: two small HTTP routes that the Streamlit server itself serves (``st.App``).

A Streamlit script talks to the browser over a websocket and cannot set a cookie; an HTTP response can. After a
login the script offers the token here under a one-time handoff id (random, 60 s) and the page posts that id
to ``POST /session``, whose answer sets the token as an ``HttpOnly`` cookie: page JavaScript never sees the
token, and it is never in a URL. ``DELETE /session`` clears the cookie (the logout has revoked the token at the
API already). The browser sends the cookie with the websocket handshake, where ``st.context.cookies`` reads it.

Both routes want the ``X-Sprout-Session`` header, which a cross-site page cannot send without a CORS preflight
that this server never grants, and refuse requests the browser marks as cross-site (``Sec-Fetch-Site``).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Mapping

import streamlit as st
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from streamlit_app.settings import UiSettings

PLAIN_NAME = "sprout-session"
SECURE_NAME = "__Host-sprout-session"  # __Host-: Secure, Path=/ and no Domain, so no sibling host can plant one
CSRF_HEADER = "X-Sprout-Session"
HANDOFF_SECONDS = 60.0
MAX_HANDOFFS = 10_000
MAX_BODY_BYTES = 1024


class Handoffs:
    """Tokens waiting for the page to fetch their cookie: one-time ids, forgotten after ``HANDOFF_SECONDS``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offers: dict[str, tuple[str, int, float]] = {}  # id -> (token, cookie max-age, offered at)

    def offer(self, token: str, max_age: int) -> str:
        handoff = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            self._offers = {k: v for k, v in self._offers.items() if now - v[2] < HANDOFF_SECONDS}
            if len(self._offers) >= MAX_HANDOFFS:
                self._offers.pop(next(iter(self._offers)))
            self._offers[handoff] = (token, max_age, now)
        return handoff

    def take(self, handoff: object) -> tuple[str, int] | None:
        """The token and max-age offered under ``handoff`` (once), or None: unknown, taken or too old."""
        if not isinstance(handoff, str):
            return None
        with self._lock:
            offered = self._offers.pop(handoff, None)
        if offered is None or time.monotonic() - offered[2] >= HANDOFF_SECONDS:
            return None
        return offered[0], offered[1]


HANDOFFS = Handoffs()  # one per process: the routes and the scripts run in the same Streamlit server


def path() -> str:
    """The routes' path, under ``server.baseUrlPath`` when the app is served below one."""
    base = str(st.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{base}/session" if base else "/session"


def read(cookies: Mapping[str, str], *, secure: bool) -> str | None:
    """The token in the browser's session cookie, if it sent one. Over HTTPS (``secure``) only the ``__Host-``
    cookie, which only this host can have set: a plain-named one there may have been planted by a sibling host or
    over plain HTTP (logging the victim in as the planter). Over HTTP only the plain one."""
    return cookies.get(SECURE_NAME if secure else PLAIN_NAME) or None


def served_securely(scheme: str | None, headers: Mapping[str, str]) -> bool:
    """Whether the page is HTTPS: ``SPROUT_UI_COOKIE_SECURE`` true/false, or (auto) the ``scheme`` it came by, or a
    proxy's ``X-Forwarded-Proto``."""
    mode = UiSettings().ui_cookie_secure
    if mode != "auto":
        return mode == "true"
    forwarded = next((value for name, value in headers.items() if name.lower() == "x-forwarded-proto"), "")
    forwarded = forwarded.split(",")[0].strip().lower()
    return (scheme or "").lower() == "https" or forwarded == "https"


def is_secure(request: Request) -> bool:
    """Mark the cookie ``Secure`` (and name it ``__Host-``): see ``served_securely``."""
    return served_securely(request.url.scheme, request.headers)


def _refused(request: Request) -> Response | None:
    if request.headers.get(CSRF_HEADER) != "1":
        return JSONResponse({"detail": f"The {CSRF_HEADER} header is missing."}, status_code=403)
    if request.headers.get("sec-fetch-site", "same-origin") != "same-origin":
        return JSONResponse({"detail": "Cross-site requests are refused."}, status_code=403)
    return None


async def _small_body(request: Request) -> bytes | None:
    """The request body, or None once it passes MAX_BODY_BYTES: the rest is never read (a chunked body has no
    Content-Length to refuse it by)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return None
    return bytes(body)


def _no_store(status_code: int = 204) -> Response:
    return Response(status_code=status_code, headers={"Cache-Control": "no-store"})


async def save(request: Request) -> Response:
    """``POST /session`` ``{"handoff": id}``: set the session cookie to the token offered under that id."""
    if (refused := _refused(request)) is not None:
        return refused
    if (raw := await _small_body(request)) is None:
        return JSONResponse({"detail": "The request is too large."}, status_code=413)
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    offered = HANDOFFS.take(body.get("handoff") if isinstance(body, dict) else None)
    if offered is None:
        return JSONResponse({"detail": "Unknown or expired handoff."}, status_code=404,
                            headers={"Cache-Control": "no-store"})
    token, max_age = offered
    secure = is_secure(request)
    response = _no_store()
    response.set_cookie(SECURE_NAME if secure else PLAIN_NAME, token, max_age=max_age, path="/", secure=secure,
                        httponly=True, samesite="strict")
    return response


async def clear(request: Request) -> Response:
    """``DELETE /session``: forget the session cookie (both names)."""
    if (refused := _refused(request)) is not None:
        return refused
    response = _no_store()
    response.delete_cookie(PLAIN_NAME, path="/", httponly=True, samesite="strict")
    if is_secure(request):  # a __Host- cookie can only be replaced by a Secure one
        response.delete_cookie(SECURE_NAME, path="/", secure=True, httponly=True, samesite="strict")
    return response


def routes() -> list[Route]:
    return [Route(path(), save, methods=["POST"]), Route(path(), clear, methods=["DELETE"])]
