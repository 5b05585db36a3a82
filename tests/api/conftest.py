"""API fixtures: a small real model trained once, the real app under TestClient, reviewer tokens."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from model.pipeline import train
from model.samples import import_directory
from model.services import Services
from model.settings import Settings, get_settings
from model.users import create_user
from tests.utils.images import dataset_images

REVIEWER, PASSWORD = "reviewer", "reviewer-password-1"


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An embedded home with version 1 trained on 40 + 40 shared images and one reviewer account."""
    tree = tmp_path_factory.mktemp("small-set")
    for label in ("dandelion", "grass"):
        (tree / label).mkdir()
        for path in dataset_images(label, 40):
            shutil.copyfile(path, tree / label / path.name)
    home = tmp_path_factory.mktemp("api-home")
    svc = Services.from_settings(Settings(home=home, gate_min_accuracy=0.5))  # a small model, not a good one
    with svc.session() as session:
        import_directory(session, svc.store, tree)
        create_user(session, username=REVIEWER, password=PASSWORD)
    outcome = train(svc, force=True)
    assert outcome.promoted and outcome.version == "1", outcome
    svc.close()
    return home


def make_client(monkeypatch: pytest.MonkeyPatch, home: Path, **env: str) -> TestClient:
    """The real app, configured through SPROUT_* variables, lifespan included."""
    for key in list(__import__("os").environ):
        if key.startswith("SPROUT_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("SPROUT_HOME", str(home))
    for key, value in env.items():
        monkeypatch.setenv(f"SPROUT_{key.upper()}", value)
    get_settings.cache_clear()
    from api.main import create_app

    return TestClient(create_app(), raise_server_exceptions=False)


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, trained_home: Path) -> Iterator[TestClient]:
    with make_client(monkeypatch, trained_home, model_poll_seconds="0.5") as c:
        yield c
    get_settings.cache_clear()


@pytest.fixture
def reviewer_headers(client: TestClient) -> dict[str, str]:
    resp = client.post("/auth/token", data={"username": REVIEWER, "password": PASSWORD})
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}
