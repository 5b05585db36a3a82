"""Log in: reviewers exchange their user name and password for a token (``POST /auth/token``)."""

from __future__ import annotations

import streamlit as st

from streamlit_app import client, session, state, ui
from streamlit_app.client import ApiError


def login_form() -> None:
    if state.is_logged_in():  # just logged in (or came back to /login): go to the queue
        st.switch_page("views/review.py")
    ui.record_view("login")
    st.title("Log in", anchor=False)
    st.caption("Reviewers log in to label the review queue and to promote or roll back models.")
    if st.session_state.get(state.CURRENT_PAGE) == "review":
        st.info("Log in to open the review queue.", icon=":material/lock:")
    with st.form("login", clear_on_submit=True, width=420):
        username = st.text_input("User name", autocomplete="username", key="login-username")
        password = st.text_input("Password", type="password", autocomplete="current-password",
                                 key="login-password")
        submitted = st.form_submit_button("Log in", type="primary", icon=":material/login:")
    if not submitted:
        return
    if not username or not password:
        st.error("Enter your user name and password.")
        return
    try:
        auth = client.log_in(username.strip(), password)
    except ApiError as err:
        ui.show_error(err)
        return
    session.log_in(auth)
    state.flash(f"Logged in as {auth.get('username', username)}.")
    st.rerun()


login_form()
