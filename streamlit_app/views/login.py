"""Log in: reviewers exchange their user name and password for a token (``POST /auth/token``)."""

from __future__ import annotations

import streamlit as st

from streamlit_app import client, session, state, ui
from streamlit_app.client import ApiError

LOGIN_ERROR = "login_error"  # the last failed attempt's error, shown once under the form


def login_form() -> None:
    if state.is_logged_in():  # just logged in (or came back to /login): go to the queue
        st.switch_page("views/review.py")
    ui.record_view("login")
    st.title("Log in", anchor=False)
    st.caption("Reviewers log in to label the review queue and to promote or roll back models.")
    if st.session_state.get(state.CURRENT_PAGE) == "review":
        st.info("Log in to open the review queue.", icon=":material/lock:")
    with st.form("login", width=420):
        st.text_input("User name", autocomplete="username", key="login-username")
        st.text_input("Password", type="password", autocomplete="current-password", key="login-password")
        st.form_submit_button("Log in", type="primary", icon=":material/login:", on_click=submit_login)
    error = st.session_state.pop(LOGIN_ERROR, None)
    if isinstance(error, ApiError):
        ui.show_error(error)
    elif error:
        st.error(error)


def submit_login() -> None:
    """The form's callback (it runs before the page, so it may reset a field): log in, or keep the user name,
    clear the password and leave the error for the page to show."""
    username = str(st.session_state.get("login-username") or "").strip()
    password = str(st.session_state.get("login-password") or "")
    st.session_state["login-password"] = ""
    if not username or not password:
        st.session_state[LOGIN_ERROR] = "Enter your user name and password."
        return
    try:
        auth = client.log_in(username, password)
    except ApiError as err:
        st.session_state[LOGIN_ERROR] = err
        return
    st.session_state["login-username"] = ""
    session.log_in(auth)
    state.flash(f"Logged in as {auth.get('username', username)}.")


login_form()
