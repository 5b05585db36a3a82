"""``/docs`` and ``/redoc`` work offline: their pages load JavaScript and CSS from the API itself, never a CDN."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from api.main import create_app

ASSET = re.compile(r"""(?:src|href)=["']([^"']+)["']|url:\s*["']([^"']+)["']""")


@pytest.fixture(scope="module")
def docs_client() -> TestClient:
    """The app without its lifespan: the docs pages need no model, database or store."""
    return TestClient(create_app())


def asset_urls(html: str) -> list[str]:
    """Every script, stylesheet, icon and spec URL a docs page references."""
    return [a or b for a, b in ASSET.findall(html)]


@pytest.mark.parametrize(("page", "kinds"), [("/docs", {"javascript", "css"}), ("/redoc", {"javascript"})])
def test_docs_pages_reference_only_local_assets_that_are_served(docs_client: TestClient, page: str,
                                                                kinds: set[str]) -> None:
    html = docs_client.get(page)
    assert html.status_code == 200
    urls = asset_urls(html.text)
    assert urls, html.text
    remote = [url for url in urls if "://" in url or url.startswith("//")]
    assert not remote, f"{page} loads {remote} from the network"
    served = set()
    for url in urls:
        response = docs_client.get(url)
        assert response.status_code == 200, url
        served |= {kind for kind in ("javascript", "css") if kind in response.headers["content-type"]}
        if url.endswith(".js"):
            assert len(response.content) > 100_000, url  # the real bundle, not a placeholder
    assert kinds <= served


def test_openapi_schema_does_not_list_the_docs_assets(docs_client: TestClient) -> None:
    paths = docs_client.get("/openapi.json").json()["paths"]
    assert "/predict" in paths
    assert not [path for path in paths if "docs" in path or "redoc" in path or "static" in path]
