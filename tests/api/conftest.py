"""API fixtures: a small real model trained once (a reviewer and an admin account), the real app under TestClient."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from model.core.accounts import create_user
from model.core.settings import Settings
from model.data.importer import import_directory
from model.learning.promotion import train
from model.runtime.services import Services
from tests.utils.datasets import dataset_tree
from tests.utils.services import migrated_services

REVIEWER, PASSWORD = "reviewer", "reviewer-password-1"
ADMIN, ADMIN_PASSWORD = "admin", "admin-password-12"


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An embedded home with version 1 trained on 40 + 40 shared images and one reviewer account."""
    tree = dataset_tree(tmp_path_factory.mktemp("small-set"), 40)
    home = tmp_path_factory.mktemp("api-home")
    svc = migrated_services(Settings(home=home, gate_min_accuracy=0.5))  # a small model, not a good one
    with svc.session() as session:
        import_directory(session, svc.store, tree)
        create_user(session, username=REVIEWER, password=PASSWORD)
        create_user(session, username=ADMIN, password=ADMIN_PASSWORD, is_admin=True)
    outcome = train(svc, force=True)
    assert outcome.promoted and outcome.version == "1", outcome
    svc.close()
    return home


def make_client(monkeypatch: pytest.MonkeyPatch, home: Path, **overrides: str) -> TestClient:
    """The real app for ``Settings(home=home, **overrides)``, lifespan included (no SPROUT_* from the shell)."""
    for key in list(os.environ):
        if key.startswith("SPROUT_"):
            monkeypatch.delenv(key)
    settings = Settings(_env_file=None, home=home, **overrides)  # type: ignore[call-arg]
    from api.main import create_app

    return TestClient(create_app(settings), raise_server_exceptions=False)


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, trained_home: Path) -> Iterator[TestClient]:
    with make_client(monkeypatch, trained_home, model_poll_seconds="0.5") as c:
        yield c


def register_version(svc: Services, model: Any, *, recorded: bool = True, digest: str | None = None) -> str:
    """Log ``model`` (an onnx.ModelProto) to MLflow and register it as a new version, as a promotion does.

    ``recorded``: also write the run row Sprout keeps (with the artifact's sha256, or ``digest``); without
    it the version is one that someone registered in MLflow behind Sprout's back.
    """
    from tests.utils.champion import record_training_run

    with svc.registry.start_run("test-version") as run:
        uri = run.log_onnx(model)
    version = svc.registry.register(uri, run.run_id)
    if recorded:
        with svc.session() as session:
            record_training_run(session, version, model, digest=digest)
    return version
