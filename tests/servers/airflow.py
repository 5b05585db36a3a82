"""Airflow from ``.venv-airflow`` as ``make up`` runs it (scripts/airflow.sh), with Sprout's auth manager."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.servers.processes import HOST, Process, ServerStartError, free_port, make_tmpdir, require, wait_ready
from tests.utils.paths import REPO_ROOT


@dataclass(frozen=True)
class AirflowServer:
    """A running Airflow (api-server, scheduler, dag-processor, triggerer): URL, the admin's login and the login
    of Sprout's API (``sprout``: a trigger user of Sprout's auth manager, airflow_plugins/)."""

    url: str
    username: str
    password: str
    api_username: str
    api_password: str

    def token(self, username: str | None = None, password: str | None = None) -> str:
        """A bearer token of the admin, or of the given user."""
        import httpx

        login = {"username": username or self.username, "password": password or self.password}
        resp = httpx.post(f"{self.url}/auth/token", json=login, timeout=10)
        resp.raise_for_status()
        return str(resp.json()["access_token"])


AIRFLOW_VENV = REPO_ROOT / ".venv-airflow"
AIRFLOW_PLUGINS = REPO_ROOT / "airflow_plugins"


@contextmanager
def airflow_standalone(env: dict[str, str], *, dags_folder: Path, timeout: float = 300) -> Iterator[AirflowServer]:
    """Airflow from ``.venv-airflow`` as ``make up`` runs it (scripts/airflow.sh: api-server, scheduler,
    dag-processor, triggerer; SQLite metadata, Sprout's auth manager with an admin and the API's trigger user,
    generated passwords, DAGs unpaused), on 127.0.0.1; ``env`` adds the settings its tasks need (SPROUT_*)."""
    airflow = AIRFLOW_VENV / "bin" / "airflow"
    require(str(airflow) if airflow.is_file() else None, "Airflow CLI", "run `make install` (.venv-airflow)")
    tmp = make_tmpdir("sprout-airflow-")
    passwords = tmp / "passwords.json"
    password, api_password = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    passwords.write_text(json.dumps({"admin": password, "sprout": api_password}))
    port = free_port()
    url = f"http://{HOST}:{port}"
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "VIRTUAL_ENV", "PYTHONPATH"))},
        "PATH": f"{AIRFLOW_VENV / 'bin'}:{os.environ.get('PATH', '')}",
        "AIRFLOW_HOME": str(tmp / "home"), "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__AUTH_MANAGER": "sprout_auth_manager.SproutAuthManager",
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(AIRFLOW_PLUGINS),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,sprout:viewer",
        "AIRFLOW__SPROUT__TRIGGER_USERS": "sprout",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API__HOST": HOST, "AIRFLOW__API__PORT": str(port), "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        **env,
    }
    script = REPO_ROOT / "scripts" / "airflow.sh"
    proc = Process("airflow", [str(script)], tmp / "airflow.log", env=full_env, cwd=tmp)
    try:
        def health() -> None:
            with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=5) as resp:
                if resp.status != 200:
                    raise ServerStartError(f"health answered {resp.status}")

        wait_ready(proc, health, timeout, "Airflow")
        yield AirflowServer(url=url, username="admin", password=password, api_username="sprout",
                            api_password=api_password)
    finally:
        proc.stop()
        shutil.rmtree(tmp, ignore_errors=True)

