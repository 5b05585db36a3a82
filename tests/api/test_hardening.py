"""Smaller hardening: security headers, a private state directory, signing keys that are real keys."""

from __future__ import annotations

import stat
import threading
import tomllib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from model.core.security import signing_key
from model.core.settings import Settings
from tests.utils.paths import REPO_ROOT
from tests.utils.services import migrated_services


def test_every_response_carries_the_security_headers(client: TestClient) -> None:
    for resp in (client.get("/healthz"), client.get("/models"), client.get("/nowhere"),
                 client.post("/predict", files={"file": ("x.jpg", b"not an image", "image/jpeg")})):
        assert resp.headers["x-content-type-options"] == "nosniff", resp.url
        assert resp.headers["x-frame-options"] == "DENY"
        assert resp.headers["referrer-policy"] == "no-referrer"


def test_the_embedded_state_is_private(tmp_path: Path) -> None:
    home = tmp_path / "state"
    svc = migrated_services(Settings(home=home))
    signing_key(svc.settings)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for name in ("sprout.db", "secret_key"):
        assert stat.S_IMODE((home / name).stat().st_mode) == 0o600, name


def test_a_short_signing_key_is_refused_in_every_mode(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 32"):
        signing_key(Settings(home=tmp_path, secret_key="short-but-development"))


def test_only_the_api_needs_the_signing_key_in_production(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Production settings load without SPROUT_SECRET_KEY (the DAGs' task pods run the CLI without it); the API's
    signing key refuses to be missing there (no generated key) or a placeholder."""
    monkeypatch.delenv("SPROUT_SECRET_KEY", raising=False)
    settings = Settings(_env_file=None, env="production", home=tmp_path)
    with pytest.raises(ValueError, match="SPROUT_SECRET_KEY must be set"):
        signing_key(settings)
    assert not (tmp_path / "secret_key").exists()
    with pytest.raises(ValueError, match="at least 32"):
        signing_key(Settings(_env_file=None, env="production", home=tmp_path, secret_key="changeme"))


def test_processes_starting_at_once_agree_on_one_generated_key(tmp_path: Path) -> None:
    keys: list[str] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        keys.append(signing_key(Settings(home=tmp_path / "race")))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1 and len(keys[0]) >= 48
    assert [p.name for p in (tmp_path / "race").iterdir()] == ["secret_key"]  # no temporary file left


def test_streamlit_accepts_the_uploads_the_api_accepts() -> None:
    config = tomllib.loads((REPO_ROOT / "streamlit_app" / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == Settings.model_fields["max_upload_mb"].default
