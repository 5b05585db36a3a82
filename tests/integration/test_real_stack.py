"""The core loop on real servers: PostgreSQL, SeaweedFS S3 and an MLflow server (Postgres + S3 artifacts).

The servers are started by the fixtures in tests/conftest.py; if one cannot start, these tests fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from mlflow.tracking import MlflowClient

from db.models import ReviewAction, SampleSource
from model.core.errors import RegistryUnavailableError
from model.core.settings import Settings
from model.data.fsck import fsck
from model.data.importer import import_directory
from model.data.samples import add_sample
from model.data.storage import S3Store
from model.learning.promotion import rollback, train
from model.review.actions import review_sample
from model.serving.registry import Registry
from tests import servers
from tests.utils.datasets import consistent_with_accuracy, split_files, write_tree
from tests.utils.paths import require_dataset
from tests.utils.services import migrated_services

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def real_env(pg_url: str, s3: servers.S3Server, mlflow: servers.MlflowServer, bucket: str,
             home: Path) -> dict[str, str]:
    return {
        "SPROUT_HOME": str(home),
        "SPROUT_DATABASE_URL": pg_url,
        "SPROUT_S3_ENDPOINT": s3.endpoint,
        "SPROUT_S3_ACCESS_KEY": s3.access_key,
        "SPROUT_S3_SECRET_KEY": s3.secret_key,
        "SPROUT_S3_BUCKET": bucket,
        "SPROUT_MLFLOW_TRACKING_URI": mlflow.uri,
        **mlflow.client_env,
    }


def test_core_loop_on_postgres_seaweedfs_and_mlflow_server(
    fresh_pg_url: str, s3_server: servers.S3Server, mlflow: servers.MlflowServer, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket = f"sprout-{uuid.uuid4().hex[:8]}"
    env = real_env(fresh_pg_url, s3_server, mlflow, bucket, tmp_path / "home")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()  # everything from SPROUT_* variables, as in deployment
    svc = migrated_services(settings)
    assert isinstance(svc.store, S3Store)

    initial, held_out = split_files(require_dataset(), held_out=10)
    with svc.session() as session:
        summary = import_directory(session, svc.store, write_tree(initial, tmp_path / "initial"))
    assert sum(summary.added.values()) == 310
    objects = list(s3_server.client().list_objects(bucket, prefix="labeled/", recursive=True))
    assert len(objects) == 310

    first = train(svc)
    assert first.promoted and first.version == "1"
    assert consistent_with_accuracy(first.metrics.accuracy, first.metrics.n), first.metrics
    client = MlflowClient(mlflow.uri)
    assert client.get_model_version_by_alias("sprout-classifier", "champion").version == "1"
    artifacts = list(s3_server.client().list_objects("mlflow", prefix="mlartifacts/", recursive=True))
    assert any(a.object_name.endswith(".onnx") for a in artifacts)  # the model lives in S3

    predictor = svc.registry.load_predictor()
    ids = []
    with svc.session() as session:
        for _label, path in held_out:
            sample, _ = add_sample(session, svc.store, data=path.read_bytes(), source=SampleSource.UPLOAD)
            ids.append(sample.id)
        for (label, _), sample_id in zip(held_out, ids, strict=True):
            review_sample(session, svc.store, sample_id=sample_id, action=ReviewAction.APPROVE, label=label,
                          reviewer="rev")
    second = train(svc)
    assert second.n_embedded == 10 and not second.skipped
    result = predictor.predict_bytes(held_out[0][1].read_bytes())
    assert result.label == held_out[0][0]

    # a crash between copy and delete on S3 leaves two copies; fsck removes the extra one
    with svc.session() as session:
        sample, _ = add_sample(session, svc.store, data=(require_dataset() / held_out[1][0] / held_out[1][1].name)
                               .read_bytes(), source=SampleSource.UPLOAD)
        assert not _  # already known: the duplicate is the existing sample
        svc.store.copy(sample.object_key, f"rejected/{sample.sha256}.jpg")
        report = fsck(session, svc.store, grace=timedelta(0))  # S3 last-modified: this copy is seconds old
    assert report.removed_leftovers == [f"rejected/{sample.sha256}.jpg"] and report.ok
    assert svc.store.exists(sample.object_key)

    if second.promoted:
        assert rollback(svc).champion == "1"

    # the CLI reads the same real services from the environment
    proc = subprocess.run([str(Path(sys.executable).with_name("sprout")), "--json", "status"],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    status = json.loads(proc.stdout)
    assert status["samples"]["approved"] == 320 and status["champion"]["version"] == "1"


def test_mlflow_answers_only_clients_with_credentials(
    mlflow: servers.MlflowServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Finding: anyone reaching MLflow could move `champion`. The server runs as deployed (basic-auth)."""
    search = f"{mlflow.uri}/api/2.0/mlflow/registered-models/search"
    alias = f"{mlflow.uri}/api/2.0/mlflow/registered-models/alias"
    takeover = {"name": "sprout-classifier", "alias": "champion", "version": "1"}
    assert httpx.get(search, timeout=10).status_code == 401
    assert httpx.post(alias, json=takeover, timeout=10).status_code == 401
    assert httpx.get(search, auth=(mlflow.username, "wrong-password"), timeout=10).status_code == 401
    assert httpx.get(search, auth=(mlflow.username, mlflow.password), timeout=10).status_code == 200

    for key in mlflow.client_env:
        monkeypatch.delenv(key, raising=False)
    anonymous = Registry.from_settings(Settings(mlflow_tracking_uri=mlflow.uri, model_name="anonymous"))
    with pytest.raises(RegistryUnavailableError):
        anonymous.experiment_id()
    for key, value in mlflow.client_env.items():
        monkeypatch.setenv(key, value)
    assert Registry.from_settings(Settings(mlflow_tracking_uri=mlflow.uri, model_name="authenticated")).experiment_id()
