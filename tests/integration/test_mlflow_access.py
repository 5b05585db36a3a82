"""The API's own MLflow login (``sprout mlflow serving-login``) on the MLflow server as deployed: it reads the
training runs and the registered model and moves `champion` (an admin's rollback through the API), nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from mlflow.tracking import MlflowClient

from model.core.settings import Settings
from model.runtime.mlflow_access import grant_serving_access
from model.serving.registry import Registry
from tests import servers

pytestmark = pytest.mark.integration


def test_the_serving_login_reads_the_model_and_moves_champion_only(
    mlflow: servers.MlflowServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    for key, value in mlflow.client_env.items():
        monkeypatch.setenv(key, value)
    tag = uuid.uuid4().hex[:8]
    settings = Settings(home=tmp_path, mlflow_tracking_uri=mlflow.uri, mlflow_experiment=f"sprout-{tag}",
                        model_name=f"classifier-{tag}")
    # the trainer (admin): a run with an ONNX file, registered as version 1; another team's experiment beside it
    admin, client = Registry.from_settings(settings), MlflowClient(mlflow.uri, registry_uri=mlflow.uri)
    with admin.start_run("train") as run:
        (tmp_path / "model.onnx").write_bytes(b"not really onnx")
        client.log_artifact(run.run_id, str(tmp_path / "model.onnx"), "model")
    admin.ensure_registered_model()
    source = f"{client.get_run(run.run_id).info.artifact_uri}/model"
    version = str(client.create_model_version(settings.model_name, source, run_id=run.run_id).version)
    other = client.create_experiment(f"other-{tag}")

    user, password = f"sprout-api-{tag}", "serving-password-" + tag
    proc = subprocess.run([str(Path(sys.executable).with_name("sprout")), "--json", "mlflow", "serving-login", user],
                          input=password + "\n", capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SPROUT_HOME": str(tmp_path), "SPROUT_MLFLOW_TRACKING_URI": mlflow.uri,
                               "SPROUT_MLFLOW_EXPERIMENT": settings.mlflow_experiment,
                               "SPROUT_MODEL_NAME": settings.model_name})
    assert proc.returncode == 0, proc.stderr[-2000:]

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    serving = Registry.from_settings(settings)
    serving.set_champion(version)  # an admin's rollback through the API
    info, path = serving.model_file()
    assert info.version == version and path.read_bytes() == b"not really onnx"

    api = httpx.Client(base_url=f"{mlflow.uri}/api/2.0/mlflow", auth=(user, password), timeout=10)
    experiment_id = admin.experiment_id()
    assert api.get("/experiments/get", params={"experiment_id": experiment_id}).status_code == 200
    refused = {
        "another experiment": api.get("/experiments/get", params={"experiment_id": other}),
        "a run in the training experiment": api.post("/runs/create", json={"experiment_id": experiment_id}),
        "an experiment of its own": api.post("/experiments/create", json={"name": f"own-{tag}"}),
        "one spelt for MLflow's UI": api.post(f"{mlflow.uri}/ajax-api/2.0/mlflow/experiments/create",
                                              json={"name": f"own-ajax-{tag}", "artifactLocation": "/tmp/x"}),
        "demo data (an experiment)": api.post(f"{mlflow.uri}/ajax-api/3.0/mlflow/demo/generate", json={}),
        "a gateway secret": api.post(f"{mlflow.uri}/api/3.0/mlflow/gateway/secrets/create",
                                     json={"secret_name": f"s-{tag}", "secret_value": {"api_key": "x"}}),
        "the assistant's configuration": api.put(f"{mlflow.uri}/ajax-api/3.0/mlflow/assistant/config", json={}),
        "tagging a training run": api.post("/runs/set-tag", json={"run_id": run.run_id, "key": "k", "value": "v"}),
        "deleting a version": api.request("DELETE", "/model-versions/delete",
                                          json={"name": settings.model_name, "version": version}),
        "deleting the model": api.request("DELETE", "/registered-models/delete", json={"name": settings.model_name}),
        "adding a user": api.post("/users/create", json={"username": f"x-{tag}", "password": "p" * 16}),
        "granting itself more": httpx.post(
            f"{mlflow.uri}/api/3.0/mlflow/users/permissions/grant", auth=(user, password), timeout=10,
            json={"username": user, "resource_type": "experiment", "resource_id": other, "permission": "MANAGE"}),
    }
    assert {what: resp.status_code for what, resp in refused.items()} == dict.fromkeys(refused, 403)

    # running it again resets the password: the old one stops working
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", mlflow.username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", mlflow.password)
    grant_serving_access(settings, user, password + "-new")
    assert api.get("/experiments/get", params={"experiment_id": experiment_id}).status_code == 401
