"""The Open Inference Protocol (/v2) driven by Triton's own client against the real API under uvicorn.

Acceptance: ``tritonclient.http`` gets the probabilities ``/predict`` gives for the same image, with encoded
images (BYTES) and with preprocessed pixels (FP32), binary and JSON both ways. Raw requests check the
protocol's error JSON; the parser and encoder are tested without a server in ``test_decoding.py`` and
``test_encoding.py``.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException, serialize_byte_tensor

from api.v2 import protocol
from model.core.settings import Settings
from model.data.images import PreprocessSpec, load_and_preprocess
from tests.api.conftest import make_client
from tests.utils.images import dataset_images, png_claiming_size, random_image_bytes
from tests.utils.live_api import LiveApi, serve
from tests.utils.markers import needs
from tests.utils.services import migrated_services

MODEL = Settings.model_fields["model_name"].default  # SPROUT_MODEL_NAME, not set by the live server
LABELS = ["dandelion", "grass"]


@pytest.fixture(scope="module")
@needs("server")
def live(trained_home: Path) -> Iterator[LiveApi]:
    with serve(trained_home) as api:
        yield api


@pytest.fixture(scope="module")
def photos() -> list[bytes]:
    return [dataset_images("dandelion", 45)[-1].read_bytes(), dataset_images("grass", 45)[-1].read_bytes()]


@pytest.fixture(scope="module")
def expected(live: LiveApi, photos: list[bytes]) -> np.ndarray:
    """``POST /predict``'s probabilities for each photo, columns in the model's label order."""
    rows = []
    for data in photos:
        resp = httpx.post(f"{live.url}/predict", files={"file": ("p.jpg", data, "image/jpeg")}, timeout=60)
        assert resp.status_code == 200, resp.text
        rows.append([resp.json()["probabilities"][label] for label in LABELS])
    return np.array(rows)


@pytest.fixture(scope="module")
def champion(live: LiveApi, photos: list[bytes]) -> str:
    """The version the API serves, as ``/predict`` names it (the session's trained home: earlier tests may have
    promoted others)."""
    resp = httpx.post(f"{live.url}/predict", files={"file": ("p.jpg", photos[0], "image/jpeg")}, timeout=60)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["model_version"])


@pytest.fixture
def client(live: LiveApi) -> Iterator[triton.InferenceServerClient]:
    c = triton.InferenceServerClient(live.url.removeprefix("http://"), network_timeout=60)
    yield c
    c.close()


def outputs(binary: bool) -> list[triton.InferRequestedOutput]:
    return [triton.InferRequestedOutput(name, binary_data=binary) for name in ("probabilities", "label")]


def check(result: triton.InferResult, expected: np.ndarray) -> None:
    proba = result.as_numpy("probabilities")
    assert proba.dtype == np.float32 and proba.shape == expected.shape
    np.testing.assert_allclose(proba, expected, atol=1e-5, rtol=0)
    labels = [x.decode() if isinstance(x, bytes) else x for x in result.as_numpy("label")]
    assert labels == [LABELS[i] for i in expected.argmax(axis=1)]


def images_input(photos: list[bytes], *, binary: bool = True, b64: bool = False) -> triton.InferInput:
    items = [base64.b64encode(p) for p in photos] if b64 else photos
    tensor = triton.InferInput("images", [len(photos)], "BYTES")
    return tensor.set_data_from_numpy(np.array(items, dtype=np.object_), binary_data=binary)


def test_health_and_metadata(client: triton.InferenceServerClient, champion: str) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(MODEL) and client.is_model_ready(MODEL, champion)
    assert not client.is_model_ready(MODEL, "70") and not client.is_model_ready("someone-else")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    meta = client.get_model_metadata(MODEL)
    assert meta == client.get_model_metadata(MODEL, champion)
    assert (meta["name"], meta["versions"], meta["platform"]) == (MODEL, [champion], "onnxruntime_onnx")
    size = meta["preprocess"]["input_size"]
    assert meta["inputs"] == [{"name": "images", "datatype": "BYTES", "shape": [-1]},
                              {"name": "pixels", "datatype": "FP32", "shape": [-1, 3, size, size]}]
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
                               {"name": "label", "datatype": "BYTES", "shape": [-1]},
                               {"name": "abstained", "datatype": "BOOL", "shape": [-1]},
                               {"name": "unfamiliar", "datatype": "BOOL", "shape": [-1]}]
    assert meta["labels"] == LABELS  # the column order of probabilities


@pytest.mark.parametrize("binary_out", [True, False], ids=["binary-out", "json-out"])
def test_encoded_images_give_the_probabilities_of_predict(client: triton.InferenceServerClient, live: LiveApi,
                                                          photos: list[bytes], expected: np.ndarray,
                                                          champion: str, binary_out: bool) -> None:
    before = live.metric("sprout_predictions_total", label="dandelion")
    result = client.infer(MODEL, [images_input(photos)], outputs=outputs(binary_out), request_id="r-1")
    check(result, expected)
    assert result.get_response()["id"] == "r-1" and result.get_response()["model_version"] == champion
    dandelions = int((expected.argmax(axis=1) == 0).sum())
    assert live.metric("sprout_predictions_total", label="dandelion") == before + dandelions  # as /predict counts
    one = client.infer(MODEL, [images_input(photos[1:])], model_version=champion)  # no outputs named: all, binary
    check(one, expected[1:])


def test_images_in_json_are_base64(client: triton.InferenceServerClient, photos: list[bytes],
                                   expected: np.ndarray) -> None:
    """JSON strings cannot carry raw image bytes (tritonclient refuses to send them); base64 works."""
    check(client.infer(MODEL, [images_input(photos, binary=False, b64=True)], outputs=outputs(False)), expected)
    with pytest.raises(InferenceServerException, match="UTF-8"):
        images_input(photos, binary=False)


@pytest.mark.parametrize(("binary_in", "binary_out"), [(True, True), (False, False), (False, True)],
                         ids=["binary", "json", "json-in-binary-out"])
def test_pixels_give_the_probabilities_of_predict(client: triton.InferenceServerClient, photos: list[bytes],
                                                  expected: np.ndarray, binary_in: bool, binary_out: bool) -> None:
    spec = PreprocessSpec.from_json(json.dumps(client.get_model_metadata(MODEL)["preprocess"]))
    batch = np.stack([load_and_preprocess(p, spec) for p in photos])
    pixels = triton.InferInput("pixels", list(batch.shape), "FP32").set_data_from_numpy(batch, binary_data=binary_in)
    check(client.infer(MODEL, [pixels], outputs=outputs(binary_out)), expected)


def test_another_version_or_model_is_refused(client: triton.InferenceServerClient, photos: list[bytes],
                                            champion: str) -> None:
    with pytest.raises(InferenceServerException, match=f"only the champion, version {champion}") as exc:
        client.infer(MODEL, [images_input(photos)], model_version=str(int(champion) + 1))
    assert exc.value.status() == "404"
    with pytest.raises(InferenceServerException, match="Unknown model") as exc:
        client.get_model_metadata("resnet50")
    assert exc.value.status() == "404"


def post_infer(live: LiveApi, body: dict[str, Any] | bytes, path: str = f"/v2/models/{MODEL}/infer",
               headers: dict[str, str] | None = None) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{live.url}{path}", content=content, headers=headers, timeout=60)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


BAD_REQUESTS: dict[str, tuple[dict[str, Any] | bytes, str]] = {
    "not-json": (b"{nope", "not valid JSON"),
    "two-inputs": ({"inputs": [{"name": "images"}, {"name": "pixels"}]}, "exactly one input"),
    "unknown-input": ({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}, "Unknown input"),
    "images-not-bytes": ({"inputs": [{"name": "images", "datatype": "FP32", "shape": [1], "data": [1.0]}]},
                         "must be BYTES"),
    "images-2d": ({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1, 1], "data": ["eA=="]}]},
                  "shape [N]"),
    "not-base64": ({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1], "data": ["ÿØÿà raw"]}]},
                   "base64"),
    "undecodable": ({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1],
                                 "data": [b64(b"not an image")]}]}, "images[0]"),
    "too-many": ({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [33], "data": ["eA=="] * 33}]},
                 "1 to 32"),
    "pixels-wrong-shape": ({"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 3, 8, 8],
                                        "data": [0.0] * 192}]}, "must have shape [N, 3,"),
    "pixels-count": ({"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 3, 224, 224],
                                  "data": [0.0]}]}, "needs 150528 numbers"),
    "unknown-output": ({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1], "data": ["eA=="]}],
                        "outputs": [{"name": "logits"}]}, "Unknown output"),
    "shared-memory": ({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1],
                                   "parameters": {"shared_memory_region": "r"}}]}, "not supported"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_input_is_400_with_the_protocols_error_json(live: LiveApi, case: str) -> None:
    body, message = BAD_REQUESTS[case]
    resp = post_infer(live, body)
    assert resp.status_code == 400, resp.text
    assert list(resp.json()) == ["error"] and message in resp.json()["error"], resp.text


def test_binary_framing_errors_and_limits(live: LiveApi, photos: list[bytes]) -> None:
    raw = serialize_byte_tensor(np.array(photos[:1], dtype=np.object_)).item()
    header = json.dumps({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1],
                                     "parameters": {"binary_data_size": len(raw) + 1}}]}).encode()
    resp = post_infer(live, header + raw, headers={protocol.HEADER_LENGTH: str(len(header))})
    assert resp.status_code == 400 and "binary_data_size" in resp.json()["error"]
    resp = post_infer(live, header + raw)  # binary data without Inference-Header-Content-Length
    assert resp.status_code == 400 and protocol.HEADER_LENGTH in resp.json()["error"]
    resp = post_infer(live, b"\x1f\x8b compressed", headers={"Content-Encoding": "gzip"})
    assert resp.status_code == 400 and "Content-Encoding" in resp.json()["error"]
    big = {"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1], "data": ["A" * (11 * 1024 * 1024)]}]}
    resp = post_infer(live, big)  # over SPROUT_MAX_UPLOAD_MB (10)
    assert resp.status_code == 413 and "MB limit" in resp.json()["error"]


def pixels_request(live: LiveApi, value: float, *, binary: bool) -> tuple[bytes, dict[str, str]]:
    """A ``pixels`` request of one picture holding ``value`` everywhere: the body and its headers."""
    size = live.get(f"/v2/models/{MODEL}")["preprocess"]["input_size"]
    spec: dict[str, Any] = {"name": "pixels", "datatype": "FP32", "shape": [1, 3, size, size]}
    if not binary:
        return json.dumps({"inputs": [spec | {"data": [value] * (3 * size * size)}]}).encode(), {}
    raw = np.full((1, 3, size, size), value, dtype="<f4").tobytes()
    header = json.dumps({"inputs": [spec | {"parameters": {"binary_data_size": len(raw)}}]}).encode()
    return header + raw, {protocol.HEADER_LENGTH: str(len(header))}


@pytest.mark.parametrize(("value", "binary"), [(1e39, False), (3e38, True)], ids=["json-1e39", "binary-3e38"])
def test_pixels_beyond_float32_are_400_and_the_confidence_histogram_stays_finite(live: LiveApi, value: float,
                                                                                 binary: bool) -> None:
    """JSON 1e39 is infinite as FP32; a binary 3e38 is finite but overflows inside the network: both refused,
    neither counted (one NaN would make the histogram's sum NaN for the life of the process)."""
    body, headers = pixels_request(live, value, binary=binary)
    resp = post_infer(live, body, headers=headers)
    assert resp.status_code == 400 and "finite" in resp.json()["error"], resp.text[:300]
    assert math.isfinite(live.metric("sprout_prediction_confidence_sum"))


@pytest.mark.parametrize("value", ["1_3", "underscored", "+signed"])
def test_a_malformed_header_length_is_400(live: LiveApi, photos: list[bytes], value: str) -> None:
    """Only ASCII digits: ``int()`` would also take ``1_3`` and a sign."""
    raw = serialize_byte_tensor(np.array(photos[:1], dtype=np.object_)).item()
    header = json.dumps({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1],
                                     "parameters": {"binary_data_size": len(raw)}}]}).encode()
    length = str(len(header))
    value = {"underscored": f"{length[0]}_{length[1:]}", "+signed": f"+{length}"}.get(value, value)
    resp = post_infer(live, header + raw, headers={protocol.HEADER_LENGTH: value})
    assert resp.status_code == 400 and "must be" in resp.json()["error"], resp.text


def test_json_nested_too_deeply_is_400(live: LiveApi) -> None:
    """Nesting beyond what the parser can recurse into: 400, not 500 (RecursionError)."""
    nested = "[" * 10_000 + '"eA=="' + "]" * 10_000
    body = f'{{"inputs": [{{"name": "images", "datatype": "BYTES", "shape": [1], "data": {nested}}}]}}'.encode()
    resp = post_infer(live, body)
    assert resp.status_code == 400 and "deeply" in resp.json()["error"], resp.text[:300]


def test_unknown_model_and_version_are_404(live: LiveApi) -> None:
    for method, path in [("GET", "/v2/models/other"), ("GET", "/v2/models/other/ready"),
                         ("POST", "/v2/models/other/infer"), ("GET", f"/v2/models/{MODEL}/versions/9"),
                         ("GET", f"/v2/models/{MODEL}/versions/9/ready"),
                         ("POST", f"/v2/models/{MODEL}/versions/9/infer")]:
        resp = httpx.request(method, f"{live.url}{path}", content=b"{}", timeout=30)
        assert resp.status_code == 404 and list(resp.json()) == ["error"], (path, resp.text)
    assert httpx.get(f"{live.url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{live.url}/v2/models/{MODEL}/ready").json() == {"name": MODEL, "ready": True}


def test_no_model_yet_is_503(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    migrated_services(Settings(home=tmp_path)).close()
    with make_client(monkeypatch, tmp_path) as empty:
        assert empty.get("/v2/health/live").status_code == 200
        ready = empty.get("/v2/health/ready")
        assert ready.status_code == 503 and ready.json() == {"ready": False}
        assert empty.get(f"/v2/models/{MODEL}/ready").status_code == 503
        resp = empty.post(f"/v2/models/{MODEL}/infer", content=b"{}")
        assert resp.status_code == 503 and "No model" in resp.json()["error"]
        assert empty.get("/v2/models/other").status_code == 404


def test_an_oversized_picture_is_413_naming_the_image(live: LiveApi) -> None:
    """The decode limit of /predict (SPROUT_MAX_IMAGE_MEGAPIXELS) holds here too."""
    body = {"inputs": [{"name": "images", "datatype": "BYTES", "shape": [2],
                        "data": [b64(random_image_bytes()), b64(png_claiming_size(100_000, 100_000))]}]}
    resp = post_infer(live, body)
    assert resp.status_code == 413 and resp.json()["error"].startswith("images[1]: "), resp.text
