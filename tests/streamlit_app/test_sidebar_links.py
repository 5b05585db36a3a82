"""The sidebar links the API docs, MLflow and Airflow as a browser reaches them; an unset URL gets no link."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from streamlit.testing.v1 import AppTest

MakeApp = Callable[..., AppTest]


def sidebar_links(at: AppTest) -> str:
    assert not at.exception, at.exception
    return "\n".join(m.value for m in at.sidebar.markdown)


@pytest.mark.usefixtures("closed_api")
def test_sidebar_links_the_configured_api_docs_mlflow_and_airflow(app: MakeApp,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPROUT_API_PUBLIC_URL", "https://sprout.example.org/api/")
    monkeypatch.setenv("SPROUT_MLFLOW_PUBLIC_URL", "http://localhost:5000")
    monkeypatch.setenv("SPROUT_AIRFLOW_PUBLIC_URL", "http://localhost:8080/")
    links = sidebar_links(app().run())
    assert "(https://sprout.example.org/api/docs)" in links
    assert "MLflow](http://localhost:5000)" in links
    assert "Airflow](http://localhost:8080)" in links


def test_sidebar_links_the_api_docs_at_the_api_url_and_nothing_unset(app: MakeApp, closed_api: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SPROUT_API_PUBLIC_URL", "SPROUT_MLFLOW_PUBLIC_URL", "SPROUT_AIRFLOW_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    links = sidebar_links(app().run())
    assert f"API docs]({closed_api}/docs)" in links
    assert "MLflow" not in links and "Airflow" not in links
