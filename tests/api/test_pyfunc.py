"""The champion is an MLflow pyfunc: ``mlflow.pyfunc.load_model`` and ``mlflow models serve`` answer as ``/predict``."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from db.queries import expected_artifact
from model.core.settings import Settings
from tests.api.conftest import make_client
from tests.utils.images import dataset_images, encode, random_image
from tests.utils.markers import needs
from tests.utils.paths import REPO_ROOT
from tests.utils.services import migrated_services

pytestmark = pytest.mark.slow

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def photos() -> list[bytes]:
    """Photos the model never saw in training, and a PNG."""
    files = dataset_images("dandelion", 43)[40:] + dataset_images("grass", 43)[40:]
    return [f.read_bytes() for f in files] + [encode(random_image((96, 80), seed=3), "PNG")]


@pytest.fixture(scope="module")
def settings(trained_home: Path) -> Settings:  # noqa: F811
    return Settings(_env_file=None, home=trained_home)  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def champion_uri(settings: Settings) -> str:
    return f"models:/{settings.model_name}@champion"


@pytest.fixture(scope="module")
def answers(settings: Settings, photos: list[bytes]) -> list[dict[str, Any]]:
    """What the API's ``POST /predict`` answers for each photo."""
    with pytest.MonkeyPatch.context() as monkeypatch, make_client(monkeypatch, settings.home) as client:
        found = [client.post("/predict", files={"file": ("photo", photo, "application/octet-stream")})
                 for photo in photos]
    assert all(r.status_code == 200 for r in found), [r.text for r in found]
    return [r.json() for r in found]


@pytest.fixture
def tracking(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> str:
    """MLflow pointed at the home's store as a user points it: MLFLOW_TRACKING_URI alone (its value).

    What ``Registry._bind`` set in this process (the fluent URIs and the variables they export) is cleared first.
    """
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # MLflow accepts None: back to the environment
    mlflow.set_registry_uri(None)  # type: ignore[arg-type]
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.resolved_mlflow_uri)
    return settings.resolved_mlflow_uri


def assert_same(rows: list[dict[str, Any]], answers: list[dict[str, Any]]) -> None:
    assert len(rows) == len(answers)
    for row, answer in zip(rows, answers, strict=True):
        assert row["label"] == answer["label"]
        assert (row["abstained"], row["unfamiliar"]) == (answer["abstained"], answer["unfamiliar"])
        assert abs(row["confidence"] - answer["confidence"]) <= TOLERANCE
        assert row["probabilities"].keys() == answer["probabilities"].keys()
        for label, p in answer["probabilities"].items():
            assert abs(row["probabilities"][label] - p) <= TOLERANCE, (label, row, answer)


def test_the_champion_loads_as_a_pyfunc_that_answers_as_predict(champion_uri: str, settings: Settings,
                                                                photos: list[bytes], answers: list[dict[str, Any]],
                                                                tracking: str) -> None:
    assert mlflow.get_tracking_uri() == tracking
    model = mlflow.pyfunc.load_model(champion_uri)
    assert model.metadata.get_input_schema().input_names() == ["image"]
    assert model.metadata.metadata["sprout.labels"] == '["dandelion", "grass"]'
    out = model.predict(pd.DataFrame({"image": photos}))
    assert list(out.columns) == ["label", "confidence", "probabilities", "abstained", "unfamiliar"]
    assert json.loads(model.metadata.metadata["sprout.abstain"])["thresholds"].keys() == {"dandelion", "grass"}
    assert_same(out.to_dict(orient="records"), answers)
    svc = migrated_services(settings)
    try:  # the API's predictor, straight from the registry
        predictor = svc.registry.load_predictor()
    finally:
        svc.close()
    assert_same([predictor.predict_bytes(photo).to_dict() for photo in photos], answers)
    with pytest.raises(MlflowException, match="not an image") as caught:
        model.predict(pd.DataFrame({"image": [b"not an image"]}))
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"


def test_the_model_holds_one_onnx_file_the_one_training_hashed(champion_uri: str, settings: Settings,
                                                               tmp_path: Path, tracking: str) -> None:
    assert mlflow.get_tracking_uri() == tracking
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=champion_uri, dst_path=str(tmp_path)))
    onnx_files = list(local.rglob("*.onnx"))
    assert [p.relative_to(local).as_posix() for p in onnx_files] == ["artifacts/model.onnx"]
    assert not list(local.rglob("*.pkl"))  # logged as code: nothing is unpickled on load
    example = json.loads((local / "serving_input_example.json").read_text())
    assert example["dataframe_split"]["columns"] == ["image"]  # a ready /invocations body
    svc = migrated_services(settings)
    try:
        info, served = svc.registry.model_file()
        with svc.session() as session:
            known, digest = expected_artifact(session, version=info.version)
    finally:
        svc.close()
    assert known and digest == hashlib.sha256(onnx_files[0].read_bytes()).hexdigest()
    assert served.read_bytes() == onnx_files[0].read_bytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
@needs("server")
def served(settings: Settings, champion_uri: str, tmp_path: Path) -> Iterator[str]:
    """``mlflow models serve -m models:/...@champion --env-manager local`` as a subprocess; its base URL."""
    port = free_port()
    bin_dir = str(Path(sys.executable).parent)  # `mlflow` and the `uvicorn` it runs
    # Only the tracking URI, as a user sets it: not a registry URI that an earlier in-process run exported
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_REGISTRY_URI"} | {
        "MLFLOW_TRACKING_URI": settings.resolved_mlflow_uri,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")])}
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([str(Path(bin_dir) / "mlflow"), "models", "serve", "-m", champion_uri,
                             "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):  # already gone: the assertion above says why
            os.killpg(proc.pid, signal.SIGTERM)  # the mlflow CLI and the uvicorn it started
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def test_mlflow_models_serve_answers_invocations_as_predict(served: str, photos: list[bytes],
                                                            answers: list[dict[str, Any]]) -> None:
    encoded = [base64.b64encode(photo).decode() for photo in photos]
    split = httpx.post(f"{served}/invocations", timeout=60,
                       json={"dataframe_split": {"columns": ["image"], "data": [[e] for e in encoded]}})
    assert split.status_code == 200, split.text
    assert_same(split.json()["predictions"], answers)
    records = httpx.post(f"{served}/invocations", timeout=60, json={"dataframe_records": [{"image": encoded[0]}]})
    assert records.status_code == 200, records.text
    assert_same(records.json()["predictions"], answers[:1])
    bad = httpx.post(f"{served}/invocations", timeout=60,
                     json={"dataframe_records": [{"image": base64.b64encode(b"not an image").decode()}]})
    assert bad.status_code == 400 and "not an image" in bad.text, bad.text


def test_logging_skips_the_module_scan_but_still_checks_requirements(monkeypatch: pytest.MonkeyPatch,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    import importlib_metadata
    from mlflow.utils import requirements_utils as reqs

    from model.serving.pyfunc import pip_requirements, without_module_scan

    scans: list[int] = []
    real = importlib_metadata.packages_distributions
    monkeypatch.setattr(importlib_metadata, "packages_distributions", lambda: scans.append(1) or real())
    monkeypatch.setattr(reqs, "_MODULES_TO_PACKAGES", None)
    monkeypatch.setattr(reqs, "_PACKAGES_TO_MODULES", None)
    with without_module_scan(), caplog.at_level("WARNING"):
        reqs.warn_dependency_requirement_mismatches(pip_requirements())  # pinned here: nothing to say
        assert "mismatches" not in caplog.text
        reqs.warn_dependency_requirement_mismatches(["numpy==0.0.1"])  # still checked, from numpy's metadata
    assert "numpy (current: " in caplog.text
    assert scans == []  # the whole environment was never scanned
    assert reqs._MODULES_TO_PACKAGES is None  # restored: a later inference in this process builds the map
    reqs.warn_dependency_requirement_mismatches(["numpy==0.0.1"])
    assert scans == [1]
