"""Fixtures of the Streamlit page tests: the app under ``AppTest``, pointed at a closed port or the real API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.utils.datasets import scenes_tree
from tests.utils.live_api import (
    LiveApi,
    add_reviewer,
    free_port,
    serve,
    sprout,
)
from tests.utils.markers import needs
from tests.utils.paths import REPO_ROOT

APP = REPO_ROOT / "streamlit_app" / "app.py"
VIEWS = REPO_ROOT / "streamlit_app" / "views"


@pytest.fixture(autouse=True)
def fresh_caches() -> Iterator[None]:
    """Cached API reads must not leak from one test to the next (they live in the test process)."""
    st.cache_data.clear()
    yield
    st.cache_data.clear()


@pytest.fixture
def closed_api(monkeypatch: pytest.MonkeyPatch) -> str:
    """``SPROUT_API_URL`` pointing at a port nobody listens on; returns that URL."""
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("SPROUT_API_URL", url)
    return url


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, live_api: LiveApi) -> LiveApi:
    """The real API (shared session fixture), with ``SPROUT_API_URL`` pointing at it."""
    monkeypatch.setenv("SPROUT_API_URL", live_api.url)
    return live_api


@pytest.fixture(scope="module")
@needs("server")
def modelless_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    """The real API on an empty home: no samples, no model promoted yet (one reviewer account)."""
    home = tmp_path_factory.mktemp("empty-api") / "home"
    add_reviewer(home)
    with serve(home, need_model=False) as running:
        yield running


SCENES_PER_LABEL = {"forest": 20, "sea": 20, "buildings": 20, "glacier": 6}  # glacier: under-represented


@pytest.fixture(scope="module")
@needs("server")
def scenes_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    """The real API on a home with four labels of the shared scenes set, one of them under-represented (6 photos
    against 20), version 1 trained and promoted; a reviewer and an admin account."""
    root = tmp_path_factory.mktemp("scenes-api")
    home = root / "home"
    add_reviewer(home)
    assert sprout(home, "import", str(scenes_tree(root / "tree", SCENES_PER_LABEL)))["added"] == 66
    trained = sprout(home, "train", "--force")
    assert trained["promoted"] and trained["version"] == "1", trained
    with serve(home) as running:
        yield running


@pytest.fixture
def app() -> Callable[..., AppTest]:
    """A factory of ``AppTest`` objects: the whole app (router) by default, or one view file."""

    def make(script: Path = APP, timeout: float = 60) -> AppTest:
        return AppTest.from_file(script, default_timeout=timeout)

    return make
