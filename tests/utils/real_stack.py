"""A Sprout home on the real servers (PostgreSQL, SeaweedFS S3, an MLflow server with auth) and API replicas on it:
the helpers of the real-stack tests (tests/dags/, tests/integration/)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from model.core.settings import Settings
from tests import servers
from tests.utils.paths import REPO_ROOT
from tests.utils.readiness import http_ok, wait_until_ready


def real_stack_env(tmp_path: Path, pg_url: str, s3_server: servers.S3Server, mlflow: servers.MlflowServer,
                   monkeypatch: pytest.MonkeyPatch, *, bucket: str, model: str,
                   **extra: str) -> tuple[dict[str, str], Settings]:
    """The SPROUT_* environment of a home on the real servers, and its settings; the API, the DAG's tasks and
    this process authenticate to MLflow (its client variables are set here too)."""
    env = {
        "SPROUT_HOME": str(tmp_path / "home"),
        "SPROUT_DATABASE_URL": pg_url,
        "SPROUT_S3_ENDPOINT": s3_server.endpoint,
        "SPROUT_S3_ACCESS_KEY": s3_server.access_key,
        "SPROUT_S3_SECRET_KEY": s3_server.secret_key,
        "SPROUT_S3_BUCKET": bucket,
        "SPROUT_MLFLOW_TRACKING_URI": mlflow.uri,
        "SPROUT_MODEL_NAME": model,
        **extra,
    }
    settings = Settings(**{k.removeprefix("SPROUT_").lower(): v for k, v in env.items()})
    for key, value in mlflow.client_env.items():
        monkeypatch.setenv(key, value)
    return env | mlflow.client_env, settings


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=30)


@contextmanager
def replicas(env: dict[str, str], log_dir: Path, count: int = 2) -> Iterator[list[str]]:
    """``count`` API processes (``uvicorn api.main:app``) on the same servers, started together and ready: their
    URLs. ``env``: the SPROUT_* settings (this process's are not passed on); each logs to ``log_dir/api-N.log``."""
    api_env = {k: v for k, v in os.environ.items() if not k.startswith("SPROUT_")} | env
    with ExitStack() as stack:
        started = []
        for i in range(count):
            port, log = servers.free_port(), log_dir / f"api-{i}.log"
            err = stack.enter_context(log.open("w"))
            # as deployed (the chart, up.sh): only SPROUT_TRUSTED_PROXIES decides whose X-Forwarded-For counts
            proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1",
                                     "--port", str(port), "--no-proxy-headers"], cwd=REPO_ROOT, env=api_env,
                                    stdout=subprocess.DEVNULL, stderr=err)
            stack.callback(_stop, proc)
            started.append((f"http://127.0.0.1:{port}", proc, log))
        for url, proc, log in started:
            wait_until_ready(http_ok(f"{url}/readyz"), what="an API replica", timeout=120, proc=proc, log=log,
                             interval=0.5)
        yield [url for url, _, _ in started]
