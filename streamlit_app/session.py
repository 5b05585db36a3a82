"""Logins that survive a reload: the script side of the ``HttpOnly`` session cookie (routes: ``cookie``).

* ``log_in``: keep the token in session state and offer it for the cookie; ``sync`` then mounts a tiny
  component whose JavaScript posts the one-time handoff id to ``/session``, which sets the cookie.
* ``restore``: at a session's first run (a new tab, a reload), log in again with the cookie's token if the
  API still honours it (``GET /auth/me``, which also says how long it has left); a refused one is cleared.
* ``log_out``: the API revokes the token (``POST /auth/logout``) and ``sync`` has the cookie cleared.
"""

from __future__ import annotations

import functools
import logging
from typing import Any
from urllib.parse import urlsplit

import streamlit as st

from streamlit_app import client, cookie, state
from streamlit_app.client import ApiError

log = logging.getLogger("sprout.ui")
EXPIRY_MARGIN_S = 30  # as in state.log_in: the cookie ends a little before the token

_FETCH_JS = """
export default function ({ data, setTriggerValue }) {
  const { id, url, method, handoff } = data;
  const init = { method, credentials: "same-origin", cache: "no-store", headers: { "X-Sprout-Session": "1" } };
  if (handoff) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify({ handoff });
  }
  fetch(url, init).then((r) => setTriggerValue("done", { id, ok: r.ok }),
                        () => setTriggerValue("done", { id, ok: false }));
}
"""
_cookie_request = st.components.v2.component("sprout_session_cookie", js=_FETCH_JS)


def log_in(auth: dict[str, Any]) -> None:
    """Keep the answer of ``POST /auth/token`` and have the page store its token in the session cookie."""
    state.log_in(auth)
    max_age = int(auth.get("expires_in", 0)) - EXPIRY_MARGIN_S
    if max_age > 0:
        handoff = cookie.HANDOFFS.offer(auth["access_token"], max_age)
        st.session_state[state.COOKIE_ACTION] = {"id": f"save-{handoff[:8]}", "method": "POST", "handoff": handoff}


def log_out() -> None:
    """Revoke the token at the API (best effort: it expires anyway) and forget it here and in the cookie."""
    if (token := state.token()) is not None:
        try:
            client.log_out(token)
        except ApiError as err:
            log.warning("logout: the API did not revoke the token: %s", err)
    state.log_out()


def restore() -> None:
    """Once per session: log in from the session cookie, if it holds a token the API still honours."""
    if st.session_state[state.COOKIE_CHECKED]:
        return
    st.session_state[state.COOKIE_CHECKED] = True
    url = st.context.url  # the page's address in the browser: https when a proxy in front speaks TLS
    token = cookie.read(st.context.cookies, secure=cookie.served_securely(url and urlsplit(url).scheme,
                                                                          st.context.headers))
    if token is None or state.is_logged_in():
        return
    try:
        me = client.read_me(token)
    except ApiError as err:
        if err.unauthorized:  # expired, revoked or forged: drop the cookie
            state.log_out()
        else:  # no answer: keep the cookie for the next reload
            log.warning("session cookie not checked: %s", err)
        return
    state.log_in({**me, "access_token": token})


def _done(action_id: str) -> None:
    result = st.session_state.get("session-cookie") or {}
    done = result.get("done") or {}
    action = st.session_state[state.COOKIE_ACTION]
    if action is not None and action["id"] == action_id == done.get("id"):
        st.session_state[state.COOKIE_ACTION] = None
        if not done.get("ok"):
            log.warning("the session cookie was not %s: serve the app with `streamlit run streamlit_app/server.py`",
                        "saved" if action["method"] == "POST" else "cleared")


def sync() -> None:
    """Mount the (invisible) component that asks ``/session`` to set or clear the cookie, until it has."""
    action = st.session_state[state.COOKIE_ACTION]
    if action is None:
        return
    _cookie_request(key="session-cookie", data={**action, "url": cookie.path()}, height=0,
                    on_done_change=functools.partial(_done, action["id"]))
