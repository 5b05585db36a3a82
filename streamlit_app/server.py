"""Serve the UI: ``streamlit run streamlit_app/server.py`` (``st.App``: Streamlit with two routes of our own).

``app.py`` is the script every session runs; this launcher adds ``/session`` (``streamlit_app.cookie``), which
sets and clears the ``HttpOnly`` session cookie that keeps a reviewer logged in across reloads.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from streamlit_app import cookie

app = st.App(Path(__file__).with_name("app.py"), routes=cookie.routes())
