"""Session-state keys (one browser tab = one session) and the few helpers that read or change them.

The token and the reviewer's role live here, in ``st.session_state``; the browser keeps a copy only in an
``HttpOnly`` cookie (``streamlit_app.session``), so that a reload can restore the login.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import streamlit as st

TOKEN = "token"
USERNAME = "username"
IS_ADMIN = "is_admin"
TOKEN_EXPIRES_AT = "token_expires_at"
VIEWED_PAGES = "viewed_pages"  # pages whose "view" event was already sent in this session
PREDICTIONS = "predictions"  # uploaded file id -> {"result": prediction} or {"error": detail}
SUBMISSIONS = "submissions"  # uploaded file id -> the sample the API stored (POST /samples)
FLASH = "flash"  # one message shown at the top of the next run, then dropped
CURRENT_PAGE = "current_page"  # url path of the page being run ("" for the default page)
COOKIE_CHECKED = "cookie_checked"  # the session cookie was looked at (once per session, at its first run)
COOKIE_ACTION = "cookie_action"  # what the page must do to the session cookie: {"id", "method", "handoff"}

DEFAULTS: dict[str, Any] = {
    TOKEN: None,
    USERNAME: None,
    IS_ADMIN: False,
    TOKEN_EXPIRES_AT: 0.0,
    VIEWED_PAGES: set(),
    PREDICTIONS: {},
    SUBMISSIONS: {},
    FLASH: None,
    CURRENT_PAGE: "",
    COOKIE_CHECKED: False,
    COOKIE_ACTION: None,
}

FlashKind = Literal["success", "info", "warning", "error"]


def init() -> None:
    """Create every key that is missing (once per session; reruns keep the values)."""
    for key, default in DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = default.copy() if isinstance(default, set | dict) else default


def is_logged_in() -> bool:
    """A token is held and has not expired (the API stays the judge: a 401 logs the session out)."""
    return bool(st.session_state.get(TOKEN)) and time.time() < st.session_state.get(TOKEN_EXPIRES_AT, 0.0)


def token() -> str | None:
    return st.session_state.get(TOKEN) if is_logged_in() else None


def is_admin() -> bool:
    """The logged-in reviewer is an admin (the API still checks every admin call)."""
    return is_logged_in() and bool(st.session_state.get(IS_ADMIN))


def log_in(auth: dict[str, Any]) -> None:
    """Keep the answer of ``POST /auth/token``; the token is renewed by logging in again."""
    st.session_state[TOKEN] = auth["access_token"]
    st.session_state[USERNAME] = auth.get("username")
    st.session_state[IS_ADMIN] = bool(auth.get("is_admin"))
    # A little early, so that a token is never sent in its last seconds.
    st.session_state[TOKEN_EXPIRES_AT] = time.time() + max(0, int(auth.get("expires_in", 0)) - 30)


def log_out() -> None:
    """Forget the token here and have the page clear the session cookie (``streamlit_app.session.sync``)."""
    for key in (TOKEN, USERNAME, IS_ADMIN, TOKEN_EXPIRES_AT):
        st.session_state[key] = DEFAULTS[key]
    st.session_state[COOKIE_CHECKED] = True  # a cookie sent before the logout must not log the session in again
    st.session_state[COOKIE_ACTION] = {"id": f"clear-{time.monotonic_ns()}", "method": "DELETE", "handoff": None}


def flash(message: str, kind: FlashKind = "success") -> None:
    """Show ``message`` at the top of the next run (use before ``st.rerun()``)."""
    st.session_state[FLASH] = (kind, message)


def pop_flash() -> tuple[FlashKind, str] | None:
    return st.session_state.pop(FLASH, None)
