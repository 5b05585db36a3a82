"""End-to-end fixtures: the real API (``live_api``), the real Streamlit server, headless Chromium via Playwright.

Chromium is the Debian package (``apt-get install chromium``), launched by path: no ``playwright install``.
Screenshots go to a temporary directory and are copied to ``/tmp/sprout-shots/`` for people to look at.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.utils.live_api import LiveApi, free_port, serve, sprout_env
from tests.utils.markers import needs
from tests.utils.paths import REPO_ROOT
from tests.utils.readiness import ServerStartError, http_ok, wait_until_ready

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SHOTS_COPY = Path("/tmp/sprout-shots")
START_TIMEOUT_S = 60


@pytest.fixture(scope="session")
@needs("server")
def streamlit_url(live_api: LiveApi, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Streamlit app talking to the live API; its URL once healthy."""
    with streamlit_server(live_api.url, live_api.home, tmp_path_factory.mktemp("streamlit")) as url:
        yield url


Screenshot = Callable[[str], Path]


@dataclass(frozen=True)
class Stack:
    """The API serving a home and the Streamlit app talking to it."""

    api: LiveApi
    ui: str


@contextmanager
def api_and_ui(home: Path, log_dir: Path, *, env: dict[str, str] | None = None) -> Iterator[Stack]:
    """The API for ``home`` (more settings in ``env``) and the Streamlit app in front of it, both ready."""
    with serve(home, env=env) as api, streamlit_server(api.url, home, log_dir) as ui:
        yield Stack(api, ui)


@contextmanager
def streamlit_server(api_url: str, home: Path, log_dir: Path) -> Iterator[str]:
    """``streamlit run streamlit_app/server.py`` (the app and its ``/session`` route) on a free port, talking to
    the API at ``api_url``; its URL once healthy."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = log_dir / "streamlit.log"
    env = sprout_env(home, SPROUT_API_URL=api_url)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "streamlit_app" / "server.py"),
             "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
    try:
        try:
            wait_until_ready(http_ok(f"{url}/_stcore/health", body="ok", timeout=2), what="streamlit",
                             timeout=START_TIMEOUT_S, proc=proc, log=log_path, interval=0.3)
        except ServerStartError as exc:
            pytest.fail(str(exc))
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
@needs("browser")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), f"{CHROMIUM} missing: apt-get install -y chromium chromium-driver"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (its own Streamlit session) with a desktop-sized window."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    yield context.new_page()
    context.close()


@pytest.fixture(scope="session")
def shots_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shots")


@pytest.fixture
def screenshot(page: Page, shots_dir: Path, request: pytest.FixtureRequest) -> Callable[[str], Path]:
    """``screenshot("step")``: a full-page PNG named after the test and step, also copied to /tmp/sprout-shots."""

    def take(step: str) -> Path:
        path = shots_dir / f"{request.node.name}-{step}.png"
        page.wait_for_timeout(300)  # let Streamlit finish fading in the last elements
        page.screenshot(path=str(path), full_page=True)
        SHOTS_COPY.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, SHOTS_COPY / path.name)
        return path

    return take
