"""Sprout's web UI: the script of ``streamlit run streamlit_app/server.py``. This file is the router and the frame.

Pages are offered by login state: Predict and Models for everybody, Review for logged-in reviewers, Log in
for the others. A page not handed to ``st.navigation`` cannot be opened, not even by its URL; while logged
out, ``/review`` shows the login form and turns into the review queue once the reviewer has logged in. A new
session (a reload) first looks for the session cookie (``session.restore``).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from streamlit_app import client, session, state
from streamlit_app.links import links_markdown
from streamlit_app.settings import UiSettings

VIEWS = Path(__file__).parent / "views"
FLASH_STYLES = {
    "success": (st.success, ":material/check_circle:"),
    "info": (st.info, ":material/info:"),
    "warning": (st.warning, ":material/warning:"),
    "error": (st.error, ":material/error:"),
}


def sidebar(home: st.Page) -> None:
    with st.sidebar:
        if state.is_logged_in():
            admin = " (admin)" if st.session_state[state.IS_ADMIN] else ""
            st.markdown(f":material/person: Logged in as **{st.session_state[state.USERNAME]}**{admin}")
            if st.button("Log out", icon=":material/logout:", key="logout"):
                session.log_out()
                state.flash("You are logged out.", "info")
                st.switch_page(home)
        st.caption(f"API: `{client.api_url()}`")
        st.markdown(f":material/open_in_new: {links_markdown(UiSettings())}")
        session.sync()


def show_flash() -> None:
    """The message a page left before its ``st.rerun()`` (shown once)."""
    if (message := state.pop_flash()) is not None:
        kind, text = message
        show, icon = FLASH_STYLES[kind]
        show(text, icon=icon)


def run() -> None:
    state.init()
    session.restore()  # a reload: the session cookie logs the reviewer in again
    if st.session_state[state.TOKEN] and not state.is_logged_in():
        state.log_out()
        state.flash("Your session has expired. Please log in again.", "warning")

    predict = st.Page(VIEWS / "predict.py", title="Predict", icon=":material/image_search:", default=True)
    models = st.Page(VIEWS / "models.py", title="Models", icon=":material/model_training:")
    if state.is_logged_in():
        review = st.Page(VIEWS / "review.py", title="Review", icon=":material/fact_check:")
        # /login after a successful login: login.py sees the session and moves on to the queue.
        after_login = st.Page(VIEWS / "login.py", title="Log in", url_path="login", visibility="hidden")
        pages = {"Sprout": [predict, models], "Reviewers": [review, after_login]}
    else:
        login = st.Page(VIEWS / "login.py", title="Log in", icon=":material/login:", url_path="login")
        # /review while logged out: the login form, under the URL the reviewer asked for.
        review_login = st.Page(VIEWS / "login.py", title="Review", url_path="review", visibility="hidden")
        pages = {"Sprout": [predict, models], "Reviewers": [login, review_login]}

    page = st.navigation(pages)
    st.set_page_config(page_title="Sprout", page_icon="🌱", layout="wide")
    sidebar(home=predict)
    if page.url_path != "login" or not state.is_logged_in():  # that page only redirects: keep the message
        show_flash()
    st.session_state[state.CURRENT_PAGE] = page.url_path
    page.run()


if __name__ == "__main__":
    run()
