"""``/docs`` in a browser that can reach nothing but the API: Swagger UI still renders every operation."""

from __future__ import annotations

import shutil
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Route, expect

from tests.e2e.conftest import Screenshot
from tests.utils.live_api import LiveApi

pytestmark = pytest.mark.slow  # the live API trains a model first
expect.set_options(timeout=30_000)  # two shared cores under a whole test suite


def offline(page: Page) -> list[str]:
    """Abort every request to a host other than 127.0.0.1 (the browser has no network); the blocked URLs that
    were no image (ReDoc's footer shows Redocly's logo from their CDN: without it the page is the same)."""
    blocked: list[str] = []

    def only_local(route: Route) -> None:
        request = route.request
        if urlsplit(request.url).hostname == "127.0.0.1":
            route.continue_()
            return
        if request.resource_type != "image":
            blocked.append(f"{request.resource_type} {request.url}")
        route.abort("internetdisconnected")

    page.route("**/*", only_local)
    return blocked


def test_docs_render_the_operations_with_no_network(page: Page, live_api: LiveApi, screenshot: Screenshot) -> None:
    blocked = offline(page)
    page.goto(f"{live_api.url}/docs")
    expect(page.locator(".opblock-summary-path", has_text="/predict").first).to_be_visible()
    expect(page.locator(".swagger-ui .info .title", has_text="Sprout")).to_be_visible()
    shutil.copy(screenshot("docs"), "/tmp/docs_offline.png")
    assert not blocked, f"/docs asked the network for {blocked}"


def test_redoc_renders_with_no_network(page: Page, live_api: LiveApi) -> None:
    blocked = offline(page)
    page.goto(f"{live_api.url}/redoc")
    expect(page.get_by_role("heading", name="Sprout")).to_be_visible()
    expect(page.get_by_text("/predict").first).to_be_attached()
    assert not blocked, f"/redoc asked the network for {blocked}"
