"""The UI's settings (no Streamlit here: the ``/session`` routes read them too, outside any script run)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class UiSettings(BaseSettings):
    """What the UI needs to know: where the API is, whether its session cookie is Secure. From ``SPROUT_*`` or ``.env``.

    Deliberately not ``model.core.settings.Settings``: the UI holds no secrets and must start without them.
    """

    model_config = SettingsConfigDict(env_prefix="SPROUT_", env_file=".env", env_ignore_empty=True, extra="ignore")

    api_url: str = Field(default="http://127.0.0.1:8000", description="Where the Streamlit app finds the API.")
    # Browser-facing addresses for the sidebar's links (the container-to-container ones above are not).
    api_public_url: str | None = Field(
        default=None,
        description="The API as a browser reaches it, for the sidebar's link to its docs (`/docs`). "
                    "Default: `SPROUT_API_URL`.")
    mlflow_public_url: str | None = Field(
        default=None,
        description="MLflow's web UI as a browser reaches it, linked from the sidebar. Empty: no link.")
    airflow_public_url: str | None = Field(
        default=None,
        description="Airflow's web UI as a browser reaches it, linked from the sidebar. Empty: no link.")
    api_timeout_seconds: float = Field(
        default=60.0,
        description="How long the Streamlit app waits for an answer of the API.")
    # SPROUT_UI_COOKIE_SECURE, the session cookie's Secure flag; auto: when the page came over HTTPS (directly, or
    # a proxy's X-Forwarded-Proto says so).
    ui_cookie_secure: Literal["auto", "true", "false"] = Field(
        default="auto",
        description="The Streamlit app's session cookie is `Secure`: `auto` when served over HTTPS (or "
                    "`X-Forwarded-Proto: https`), `true`, `false`.")
