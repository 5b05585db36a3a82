"""The UI's settings (no Streamlit here: the ``/session`` routes read them too, outside any script run)."""

from __future__ import annotations

from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class UiSettings(BaseSettings):
    """What the UI needs to know: where the API is, whether its session cookie is Secure. From ``SPROUT_*`` or ``.env``.

    Deliberately not ``model.core.settings.Settings``: the UI holds no secrets and must start without them.
    """

    model_config = SettingsConfigDict(env_prefix="SPROUT_", env_file=".env", env_ignore_empty=True, extra="ignore")

    api_url: str = "http://127.0.0.1:8000"
    api_timeout_seconds: float = 60.0
    # SPROUT_UI_COOKIE_SECURE, the session cookie's Secure flag; auto: when the page came over HTTPS (directly, or
    # a proxy's X-Forwarded-Proto says so).
    ui_cookie_secure: Literal["auto", "true", "false"] = "auto"
