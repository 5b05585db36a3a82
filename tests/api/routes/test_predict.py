"""POST /predict on a real model: valid, odd-but-valid and hostile inputs; never a 5xx for input."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from api.state import app_state
from model.core.settings import Settings
from tests.api.conftest import make_client
from tests.utils.images import (
    animated_gif_bytes,
    blank_bilevel_png,
    dataset_images,
    exif_jpeg_bytes,
    png_claiming_size,
    random_image_bytes,
)
from tests.utils.services import migrated_services


def post(client: TestClient, data: bytes, name: str = "x.jpg", ctype: str = "image/jpeg"):
    return client.post("/predict", files={"file": (name, data, ctype)})


def test_predict_a_real_photo(client: TestClient) -> None:
    resp = post(client, dataset_images("dandelion", 50)[-1].read_bytes())
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["label"] == "dandelion" and body["model_version"] == "1"
    assert set(body["probabilities"]) == {"dandelion", "grass"}
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert body["confidence"] == max(body["probabilities"].values())


def test_predict_says_abstained_and_unfamiliar_and_models_shows_the_coverage(client: TestClient) -> None:
    """The session's model (trained on dandelion and grass) carries its thresholds: a held-out photo of its labels
    is familiar, a photo of another label set (a glacier) is not; /models shows the version's coverage."""
    from tests.utils.paths import SCENES

    def unfamiliar_count() -> float:
        line = next(x for x in client.get("/metrics").text.splitlines()
                    if x.startswith('sprout_prediction_doubts_total{kind="unfamiliar"}'))
        return float(line.split()[-1])

    body = post(client, dataset_images("grass", 50)[-1].read_bytes()).json()
    assert body["label"] == "grass" and body["abstained"] is False and body["unfamiliar"] is False
    before = unfamiliar_count()
    glaciers = sorted((SCENES / "glacier").glob("*.jpg"))[:3]
    answers = [post(client, photo.read_bytes()).json() for photo in glaciers]
    assert all(a["unfamiliar"] is True and a["label"] in {"dandelion", "grass"} for a in answers), answers
    assert unfamiliar_count() == before + 3  # Prometheus counts them (the dashboard's "Not sure and unfamiliar")
    version = next(v for v in client.get("/models").json()["versions"] if v["version"] == body["model_version"])
    assert 0.0 < version["coverage"] <= 1.0 and version["abstain_precision"] == Settings().abstain_precision


def _rgb(mode: str, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img = Image.open(io.BytesIO(random_image_bytes("PNG", size=(80, 60)))).convert(mode)
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


ODD_BUT_VALID = {
    "cmyk.jpg": lambda: _rgb("CMYK", "JPEG"),
    "gray.png": lambda: _rgb("L", "PNG"),
    "palette.png": lambda: _rgb("P", "PNG"),
    "rgba.png": lambda: _rgb("RGBA", "PNG"),
    "16bit.png": lambda: random_image_bytes("PNG", mode="I;16"),
    "animated.gif": lambda: animated_gif_bytes([(200, 0, 0), (0, 200, 0)]),
    "photo.webp": lambda: random_image_bytes("WEBP"),
    "photo.tiff": lambda: random_image_bytes("TIFF"),
    "photo.bmp": lambda: random_image_bytes("BMP"),
    "rotated.jpg": lambda: exif_jpeg_bytes(6),
    "../../etc/passwd.jpg": lambda: random_image_bytes("JPEG", seed=3),
}


@pytest.mark.parametrize("name", list(ODD_BUT_VALID))
def test_odd_but_valid_images_are_classified(client: TestClient, name: str) -> None:
    resp = post(client, ODD_BUT_VALID[name](), name=name, ctype="application/octet-stream")
    assert resp.status_code == 200, resp.text
    assert resp.json()["label"] in {"dandelion", "grass"}


HOSTILE = {
    "empty": (b"", 400, "empty"),
    "truncated": (dataset_images("grass", 1)[0].read_bytes()[:5000], 400, "truncated"),
    "text": (b"hello, I am not an image" * 10, 400, "not an image"),
    "svg": (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', 415,
            "SVG"),
    "html": (b"<!DOCTYPE html><html><body>hi</body></html>", 415, "HTML"),
    "pdf": (b"%PDF-1.7\n1 0 obj<<>>endobj\n", 415, "PDF"),
    "bomb-header": (png_claiming_size(100_000, 100_000), 413, "too many pixels"),
    "bomb-real": (blank_bilevel_png(8000, 7000), 413, "too many pixels"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_input_gets_a_clear_4xx(client: TestClient, name: str) -> None:
    data, status, words = HOSTILE[name]
    resp = post(client, data)
    assert resp.status_code == status, resp.text
    assert words.lower() in resp.json()["detail"].lower()


def test_oversized_upload_is_413(monkeypatch: pytest.MonkeyPatch, trained_home: Path) -> None:
    with make_client(monkeypatch, trained_home, max_upload_mb="1") as small:
        resp = post(small, b"\xff\xd8" + b"0" * (2 * 1024 * 1024))
        assert resp.status_code == 413 and "1 MB" in resp.json()["detail"]
        just_over = post(small, b"\xff\xd8" + b"0" * (1024 * 1024))  # over the file limit, under the body slack
        assert just_over.status_code == 413


def test_the_served_model_runs_on_predict_threads_slots_shared_by_every_request(
    monkeypatch: pytest.MonkeyPatch, trained_home: Path
) -> None:
    """Uploads (on up to 100 worker threads) and predictions decode and run on the same 3 slots."""
    import sys
    import threading
    import time

    before = sys.getswitchinterval()
    with make_client(monkeypatch, trained_home, predict_threads="3") as client:
        for _ in range(100):
            if app_state(client.app).watcher.current is not None:
                break
            time.sleep(0.1)
        slots = app_state(client.app).watcher.current.slots  # type: ignore[union-attr]
        taken = [slots.acquire(blocking=False) for _ in range(4)]
        for _ in range(sum(taken)):
            slots.release()
        assert taken == [True, True, True, False]
        assert sys.getswitchinterval() == pytest.approx(0.001)
        assert post(client, dataset_images("grass", 1)[0].read_bytes()).status_code == 200
        predicting = [t.name for t in threading.enumerate() if t.name.startswith("sprout-predict")]
        assert 1 <= len(predicting) <= 3  # the prediction ran on the pool of predict_threads threads
    assert sys.getswitchinterval() == before  # the lifespan gives the interpreter's setting back


def test_missing_file_field_is_422(client: TestClient) -> None:
    resp = client.post("/predict", data={"nothing": "here"})
    assert resp.status_code == 422


def test_no_model_yet_is_503(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    migrated_services(Settings(home=tmp_path)).close()
    with make_client(monkeypatch, tmp_path) as empty:
        resp = post(empty, random_image_bytes())
        assert resp.status_code == 503 and "No model" in resp.json()["detail"]
        assert empty.get("/readyz").status_code == 503
