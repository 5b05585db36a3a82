"""Dependencies down → 503 (never a 500); the API never imports torch; a new champion is served live."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from model.core.settings import Settings
from tests.api.conftest import make_client, register_version
from tests.servers import free_port
from tests.utils.images import dataset_images, random_image_bytes
from tests.utils.paths import REPO_ROOT
from tests.utils.services import migrated_services


def photo() -> tuple[str, bytes, str]:
    return ("a.jpg", dataset_images("grass", 3)[2].read_bytes(), "image/jpeg")


def test_storage_down_is_503(monkeypatch: pytest.MonkeyPatch, trained_home: Path) -> None:
    closed = f"127.0.0.1:{free_port()}"
    with make_client(monkeypatch, trained_home, s3_endpoint=closed, s3_access_key="k",
                     s3_secret_key="not-a-real-secret") as client:
        fresh = ("b.jpg", random_image_bytes("JPEG", size=(90, 70), seed=77), "image/jpeg")  # not stored yet
        resp = client.post("/samples", files={"file": fresh})
        assert resp.status_code == 503 and "object store" in resp.json()["detail"]
        assert client.get("/readyz").status_code == 503
        assert client.get("/readyz").json()["checks"]["storage"].startswith("unavailable")


def test_database_down_is_503(monkeypatch: pytest.MonkeyPatch, trained_home: Path) -> None:
    url = f"postgresql+psycopg2://sprout:x@127.0.0.1:{free_port()}/sprout"
    with make_client(monkeypatch, trained_home):
        pass  # the champion's artifact is verified once against the database (and marked in the local cache)
    with make_client(monkeypatch, trained_home, database_url=url) as client:
        resp = client.post("/samples", files={"file": photo()})
        assert resp.status_code == 503 and resp.json() == {"detail": "The database is unavailable; try again shortly."}
        login = client.post("/auth/token", data={"username": "a", "password": "b"})
        assert login.status_code == 503
        assert client.get("/readyz").status_code == 503
        assert client.post("/predict", files={"file": photo()}).status_code == 200  # serving needs no database


def test_registry_down_is_503(monkeypatch: pytest.MonkeyPatch, trained_home: Path) -> None:
    with make_client(monkeypatch, trained_home, mlflow_tracking_uri=f"http://127.0.0.1:{free_port()}") as client:
        assert client.post("/predict", files={"file": photo()}).status_code == 503  # nothing loaded
        resp = client.get("/models")
        assert resp.status_code == 503 and "registry" in resp.json()["detail"]


def test_the_api_process_never_imports_torch(trained_home: Path) -> None:
    script = textwrap.dedent(f"""
        import os, sys
        os.environ["SPROUT_HOME"] = {str(trained_home)!r}
        from fastapi.testclient import TestClient
        from api.main import create_app
        with TestClient(create_app()) as client:
            data = open({str(dataset_images("grass", 1)[0])!r}, "rb").read()
            assert client.post("/predict", files={{"file": ("a.jpg", data, "image/jpeg")}}).status_code == 200
            assert client.get("/models").status_code == 200
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "timm", "transformers"))
        assert not loaded, loaded
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


def test_new_champion_is_served_without_restart_and_no_request_fails(
    monkeypatch: pytest.MonkeyPatch, trained_home: Path
) -> None:
    # two threads hammer /predict from one address (~1,600 a minute on two cores): no per-address limit here
    with make_client(monkeypatch, trained_home, model_poll_seconds="0.5", predictions_per_minute="0") as client:
        check_new_champion_served_live(client, trained_home)


def check_new_champion_served_live(client: TestClient, trained_home: Path) -> None:
    assert client.get("/models").json()["serving"] == "1"
    stop, statuses = threading.Event(), []

    def hammer() -> None:
        while not stop.is_set():
            statuses.append(client.post("/predict", files={"file": photo()}).status_code)

    workers = [threading.Thread(target=hammer) for _ in range(2)]
    for w in workers:
        w.start()
    try:
        import onnx

        svc = migrated_services(Settings(home=trained_home))
        _, path = svc.registry.model_file("1")  # a new version (the same weights), as a promotion registers it
        version = register_version(svc, onnx.load(str(path)))
        svc.registry.set_champion(version)
        outcome = SimpleNamespace(version=version)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            served = client.post("/predict", files={"file": photo()}).json().get("model_version")
            if served == outcome.version:
                break
            time.sleep(0.2)
        assert served == outcome.version
    finally:
        stop.set()
        for w in workers:
            w.join()
    assert statuses and set(statuses) == {200}
