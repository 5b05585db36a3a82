"""GET /admin/drift, `sprout drift` and the drift gauges on a real model, fed through the real /predict.

Held-back photos of the shared set (never trained on) are not drift; generated textures are. The window is
the database's: shared by two app instances on one home, there after a restart; /predict does not wait on it.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.state import app_state
from db import prediction_window
from db.models import RecentPrediction
from model.core.settings import Settings
from model.data.images import PreprocessSpec, load_and_preprocess
from model.runtime.services import Services
from tests.api.conftest import PASSWORD, REVIEWER, make_client
from tests.utils.images import dataset_images, out_of_domain_images

KEYS = {"drift_score", "threshold", "drifted", "n", "mean_confidence", "reference_mean_confidence"}
MODEL = Settings.model_fields["model_name"].default
SPROUT = str(Path(sys.executable).with_name("sprout"))


def held_back(n_per_label: int, start: int = 0) -> list[bytes]:
    """Photos after the 40 per label ``trained_home`` imported (the model never saw them), from ``start`` on."""
    return [p.read_bytes() for label in ("dandelion", "grass")
            for p in dataset_images(label, 40 + start + n_per_label)[40 + start:]]


def clear_window(home: Path) -> None:
    svc = Services.from_settings(Settings(_env_file=None, home=home))  # type: ignore[call-arg]
    with svc.session() as session:
        session.query(RecentPrediction).delete()
        session.commit()
    svc.close()


def predict_all(client: TestClient, images: list[bytes]) -> None:
    for data in images:
        resp = client.post("/predict", files={"file": ("x.jpg", data, "image/jpeg")})
        assert resp.status_code == 200, resp.text
    assert app_state(client.app).recorder.flush() >= 0


def drift(client: TestClient) -> dict:
    token = client.post("/auth/token", data={"username": REVIEWER, "password": PASSWORD}).json()["access_token"]
    resp = client.get("/admin/drift", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.fixture
def home(trained_home: Path) -> Path:
    clear_window(trained_home)
    return trained_home


def test_drift_needs_a_reviewer(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    with make_client(monkeypatch, home) as client:
        assert client.get("/admin/drift").status_code == 401


def test_held_back_photos_do_not_drift_and_textures_do(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    with make_client(monkeypatch, home) as client:
        few = drift(client)
        assert KEYS <= set(few) and few["drifted"] is False and few["n"] == 0 and few["reason"]
        predict_all(client, held_back(20))
        in_domain = drift(client)
        assert in_domain["n"] == 40 and in_domain["model_version"] == "1" and in_domain["method"] == "mmd"
        assert in_domain["drifted"] is False, in_domain
        assert in_domain["drift_score"] <= in_domain["threshold"] and in_domain["reason"] is None
        assert 0.5 < in_domain["mean_confidence"] <= 1 and 0.5 < in_domain["reference_mean_confidence"] <= 1
        assert in_domain["novel_share"] < 0.3 and in_domain["reference_n"] >= 20

        clear_window(home)
        predict_all(client, out_of_domain_images(40))
        textures = drift(client)
        assert textures["n"] == 40 and textures["drifted"] is True, textures
        assert textures["drift_score"] > textures["threshold"] and textures["novel_share"] > 0.5
        # and the gauges of /metrics follow (the monitor refreshes off the request path)
        app_state(client.app).drift.compute(force=False)
        metrics = client.get("/metrics").text
        assert "sprout_drift_detected 1.0" in metrics and "sprout_drift_window_size 40.0" in metrics
        assert "sprout_drift_score " in metrics and "sprout_reference_mean_confidence " in metrics


def test_the_window_is_shared_by_app_instances_and_survives_a_restart(monkeypatch: pytest.MonkeyPatch,
                                                                      home: Path) -> None:
    with make_client(monkeypatch, home) as first, make_client(monkeypatch, home) as second:
        predict_all(first, held_back(6))
        predict_all(second, held_back(6, start=6))  # other photos, through the other instance
        assert drift(first)["n"] == drift(second)["n"] == 24
    with make_client(monkeypatch, home) as restarted:
        assert drift(restarted)["n"] == 24  # nothing lost in the restart
    with make_client(monkeypatch, home, drift_window="20") as smaller:
        predict_all(smaller, held_back(1))
        assert drift(smaller)["n"] == 20  # the writer prunes to SPROUT_DRIFT_WINDOW
    svc = Services.from_settings(Settings(_env_file=None, home=home))  # type: ignore[call-arg]
    with svc.session() as session:
        assert prediction_window.count_recent_predictions(session) == 20
    svc.close()


def test_predict_does_not_wait_for_the_window_database(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """With another connection holding SQLite's write lock, the window's flush waits, /predict does not."""
    images = held_back(5)
    with make_client(monkeypatch, home, drift_flush_seconds="0.1") as client:
        predict_all(client, images[:2])  # warm up
        blocker = sqlite3.connect(home / "sprout.db", timeout=1)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            for data in images:
                start = time.perf_counter()
                resp = client.post("/predict", files={"file": ("x.jpg", data, "image/jpeg")})
                assert resp.status_code == 200 and time.perf_counter() - start < 1.0, resp.text
            time.sleep(0.5)  # the flush thread is now stuck on the lock
        finally:
            blocker.rollback()
            blocker.close()
        recorder = app_state(client.app).recorder
        deadline = time.monotonic() + 30
        while recorder.written + recorder.dropped < len(images) + 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert recorder.written + recorder.dropped == len(images) + 2


def test_v2_pixels_do_not_enter_the_window(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """Anybody can send any ``pixels`` (an embedding of their choosing): only encoded images are recorded."""
    photo = held_back(1)[0]
    with make_client(monkeypatch, home) as client:
        infer = f"/v2/models/{MODEL}/infer"
        spec = PreprocessSpec.from_json(json.dumps(client.get(f"/v2/models/{MODEL}").json()["preprocess"]))
        pixels = load_and_preprocess(photo, spec)[None]
        resp = client.post(infer, json={"inputs": [{"name": "pixels", "datatype": "FP32", "shape": list(pixels.shape),
                                                    "data": pixels.ravel().tolist()}]})
        assert resp.status_code == 200, resp.text
        resp = client.post(infer, json={"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1],
                                                    "data": [base64.b64encode(photo).decode()]}]})
        assert resp.status_code == 200, resp.text
        app_state(client.app).recorder.flush()
        assert drift(client)["n"] == 1  # the image, not the pixels


@pytest.mark.slow
def test_cli_prints_the_same_object(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    with make_client(monkeypatch, home) as client:
        predict_all(client, out_of_domain_images(30, seed=2))
        from_api = drift(client)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPROUT_")} | {"SPROUT_HOME": str(home)}
    proc = subprocess.run([SPROUT, "--json", "drift"], capture_output=True, text=True, env=env, timeout=300,
                          cwd=home.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [line] = [row for row in proc.stdout.splitlines() if row.strip()]
    assert json.loads(line) == from_api and from_api["drifted"] is True
