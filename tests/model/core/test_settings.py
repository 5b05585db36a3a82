"""Settings (model/core/settings.py): from the environment, embedded defaults, refused combinations."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from model.core.settings import Settings


def test_settings_from_env_and_embedded_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("SPROUT_HOME", str(tmp_path))
    monkeypatch.setenv("SPROUT_GATE_MIN_ACCURACY", "0.8")
    s = Settings()
    assert s.gate_min_accuracy == 0.8 and s.min_new_samples == 10
    assert s.resolved_database_url == f"sqlite:///{tmp_path.resolve()}/sprout.db"
    assert s.resolved_mlflow_uri.startswith("sqlite:///")
    with pytest.raises(ValidationError):
        Settings(s3_endpoint="127.0.0.1:9000")  # S3 without keys is refused
    with pytest.raises(ValidationError):
        Settings(env="production", s3_endpoint="127.0.0.1:9000", s3_access_key="k", s3_secret_key="minioadmin")
