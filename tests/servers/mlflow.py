"""An MLflow tracking server behind Sprout's basic-auth app, started as ``make up`` starts it (the venv's mlflow)."""

from __future__ import annotations

import os
import secrets
import shutil
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.servers.processes import (
    HOST,
    Process,
    ProcessExited,
    ServerStartError,
    free_port,
    make_tmpdir,
    require,
    venv_script,
    wait_ready,
)
from tests.servers.seaweedfs import S3Server
from tests.utils.paths import REPO_ROOT


def find_mlflow() -> str:
    return require(venv_script("mlflow"), "MLflow CLI 'mlflow'", "install mlflow into the venv")


@dataclass(frozen=True)
class MlflowServer:
    """A running MLflow server with basic-auth: its URI and the admin's generated credentials."""

    uri: str
    username: str
    password: str

    @property
    def client_env(self) -> dict[str, str]:
        """What a client (the API, the trainer, an Airflow task) needs to authenticate."""
        return {"MLFLOW_TRACKING_USERNAME": self.username, "MLFLOW_TRACKING_PASSWORD": self.password}


BASIC_AUTH_WRAPPER = REPO_ROOT / "docker" / "mlflow-basic-auth.sh"


@contextmanager
def mlflow_server(
    backend_url: str, s3: S3Server, *, bucket: str = "mlflow", timeout: float = 120
) -> Iterator[MlflowServer]:
    """An MLflow tracking server behind MLflow's basic-auth app, started as ``make up`` starts it (Sprout's app:
    basic-auth plus the artifact-location rule; users other than the admin get only what they are granted).

    Runs and models go to ``backend_url`` (give it a database of its own, e.g. from ``create_database``), the
    users table too; artifacts are proxied by the server (``mlflow-artifacts:/``) to ``s3://<bucket>/mlartifacts``
    on ``s3``, so clients need no S3 credentials, only ``client_env``. Anonymous calls get 401.
    """
    mlflow = find_mlflow()
    client = s3.client()
    if not client.bucket_exists(bucket):
        client.make_bucket(bucket)
    tmp = make_tmpdir("sprout-mlflow-")
    admin = MlflowServer(uri="", username="admin", password=secrets.token_urlsafe(18))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))},
        "MLFLOW_S3_ENDPOINT_URL": s3.url,
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        # docker/mlflow-basic-auth.sh writes the auth config from these, as in docker compose and the chart.
        "MLFLOW_AUTH_DATABASE_URI": backend_url,
        "MLFLOW_BACKEND_STORE_URI": backend_url,
        "MLFLOW_AUTH_ADMIN_USERNAME": admin.username,
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin.password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
        "MLFLOW_AUTH_CONFIG_PATH": str(tmp / "auth" / "basic_auth.ini"),
    }
    proc: Process | None = None
    try:
        for attempt in range(3):
            port = free_port()
            uri = f"http://{HOST}:{port}"
            cmd = [
                "sh", str(BASIC_AUTH_WRAPPER),
                mlflow, "server", "--app-name", "sprout-basic-auth",  # the store's URL by env: `ps` shows arguments
                "--artifacts-destination", f"s3://{bucket}/mlartifacts",
                "--host", HOST, "--port", str(port), "--workers", "1",
                "--allowed-hosts", f"{HOST}:{port},localhost:{port}",
            ]
            proc = Process("mlflow server", cmd, tmp / f"mlflow-{attempt}.log", env=env, cwd=tmp)

            def health(uri: str = uri) -> None:
                with urllib.request.urlopen(f"{uri}/health", timeout=5) as resp:
                    if resp.status != 200:
                        raise ServerStartError(f"/health answered {resp.status}")

            try:
                wait_ready(proc, health, timeout, "MLflow server")
                break
            except ProcessExited:
                proc.stop()
                if attempt == 2:
                    raise
        yield MlflowServer(uri=uri, username=admin.username, password=admin.password)
    finally:
        if proc is not None:
            proc.stop()
        shutil.rmtree(tmp, ignore_errors=True)

