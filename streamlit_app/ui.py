"""Helpers the pages share: error display, usage events, formatting. No HTTP here (see ``client``)."""

from __future__ import annotations

from datetime import datetime

import streamlit as st

from streamlit_app import client, state
from streamlit_app.client import ApiError


def show_error(err: ApiError) -> None:
    """Show the API's sentence with ``st.error``; a 401 while logged in ends the session (back to login)."""
    if err.unauthorized and state.is_logged_in():
        state.log_out()
        state.flash("Your session has expired. Please log in again.", "warning")
        st.rerun()
    st.error(err.detail, icon=":material/error:")


def record_view(page: str) -> None:
    """Send the page's ``view`` event once per browser session: reruns of the page do not count again."""
    viewed: set[str] = st.session_state[state.VIEWED_PAGES]
    if page in viewed:
        return
    viewed.add(page)  # before sending: a failed event is not retried on every rerun
    client.send_event(page, "view")


def require_login(what: str) -> str:
    """The session's token, or a notice and ``st.stop()`` when nobody is logged in."""
    token = state.token()
    if token is None:
        st.warning(f"Log in as a reviewer to {what}.", icon=":material/lock:")
        st.stop()
    return token


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def when(value: str | None) -> str:
    """An API timestamp (ISO 8601) as ``2026-11-23 16:28`` (UTC as sent)."""
    if not value:
        return "—"
    try:
        return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return value
