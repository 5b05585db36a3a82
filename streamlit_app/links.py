"""The sidebar's links to the other tools: the API's docs, MLflow and Airflow, as a browser reaches them."""

from __future__ import annotations

from streamlit_app.settings import UiSettings


def service_links(settings: UiSettings) -> list[tuple[str, str]]:
    """``(label, url)`` for each configured tool: the API docs always (the public URL, else ``SPROUT_API_URL``),
    MLflow and Airflow only when their public URL is set."""
    api = (settings.api_public_url or settings.api_url).rstrip("/")
    links = [("API docs", f"{api}/docs")]
    for label, url in (("MLflow", settings.mlflow_public_url), ("Airflow", settings.airflow_public_url)):
        if url:
            links.append((label, url.rstrip("/")))
    return links


def links_markdown(settings: UiSettings) -> str:
    """The links as one Markdown line for ``st.markdown`` (opened in a new tab by Streamlit)."""
    return " · ".join(f"[{label}]({url})" for label, url in service_links(settings))
