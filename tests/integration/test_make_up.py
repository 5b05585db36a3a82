"""`make up` (scripts/up.sh, the embedded default most people run) as another account on a shared machine meets it:
its MLflow answers nobody without a login, and even the operator's login cannot point an experiment's artifacts
outside the state directory. One start of the whole stack (no seed set: nothing to train), then ``make down``."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests import servers
from tests.utils.paths import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]
UP_TIMEOUT_S = 480


@dataclass(frozen=True)
class Stack:
    home: Path
    mlflow: str
    output: str
    airflow: str
    api: str

    def environ(self, service: str) -> dict[str, str]:
        """The environment of a service this stack started."""
        pid = (self.home / "run" / f"{service}.pid").read_text().strip()
        return dict(v.split("=", 1) for v in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in v)

    def credentials(self) -> dict[str, str]:
        lines = (self.home / "credentials.txt").read_text().splitlines()
        return dict(line.split(": ", 1) for line in lines if ": " in line)


@contextlib.contextmanager
def make_up(home: Path, **settings: str) -> Iterator[Stack]:
    """scripts/up.sh on free loopback ports for ``home`` (no seed set: nothing to train), then scripts/down.sh."""
    ports = {name: servers.free_port() for name in ("API", "UI", "MLFLOW", "AIRFLOW", "PG", "S3")}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPROUT_", "MLFLOW_", "AIRFLOW_"))} | {
        "SPROUT_HOME": str(home), "SPROUT_SEED_DATASET": str(home / "no-seed"),
        **{f"SPROUT_{name}_PORT": str(port) for name, port in ports.items()}, **settings}
    try:
        up = subprocess.run([str(REPO_ROOT / "scripts" / "up.sh")], cwd=REPO_ROOT, env=env, capture_output=True,
                            text=True, timeout=UP_TIMEOUT_S)
        logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted((home / "run").glob("*.log")))
        assert up.returncode == 0, f"{up.stdout[-3000:]}\n{up.stderr[-3000:]}\n{logs}"
        yield Stack(home=home, mlflow=f"http://127.0.0.1:{ports['MLFLOW']}", output=up.stdout,
                    airflow=f"http://127.0.0.1:{ports['AIRFLOW']}", api=f"http://127.0.0.1:{ports['API']}")
    finally:
        subprocess.run([str(REPO_ROOT / "scripts" / "down.sh")], cwd=REPO_ROOT, env=env, capture_output=True,
                       timeout=180)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with make_up(tmp_path_factory.mktemp("make-up") / "home") as running:
        yield running


def test_mlflow_refuses_anonymous_calls(stack: Stack) -> None:
    """Another local account can neither move `champion` (a rollback only admins may do) nor create an experiment
    whose artifacts go anywhere it likes (the DAGs folder, which Airflow imports as the stack's owner)."""
    alias = httpx.post(f"{stack.mlflow}/api/2.0/mlflow/registered-models/alias", timeout=10,
                       json={"name": "sprout-classifier", "alias": "champion", "version": "1"})
    assert alias.status_code == 401, alias.text
    experiment = httpx.post(f"{stack.mlflow}/api/2.0/mlflow/experiments/create", timeout=10,
                            json={"name": "planted", "artifact_location": (REPO_ROOT / "dags").as_uri()})
    assert experiment.status_code == 401, experiment.text
    listing = httpx.get(f"{stack.mlflow}/api/2.0/mlflow/registered-models/search", timeout=10)
    assert listing.status_code == 401, listing.text


def test_the_credentials_file_lists_the_mlflow_login(stack: Stack) -> None:
    creds = stack.credentials()
    assert creds["mlflow user"] == "admin" and len(creds["mlflow password"]) >= 12
    assert stat.S_IMODE((stack.home / "credentials.txt").stat().st_mode) == 0o600
    assert creds["mlflow password"] in stack.output  # printed with the other credentials
    resp = httpx.get(f"{stack.mlflow}/api/2.0/mlflow/registered-models/search", timeout=10,
                     auth=(creds["mlflow user"], creds["mlflow password"]))
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("where", ["dags", "outside", "dotdot", "camelCase", "ajax"])
def test_artifact_locations_outside_the_state_directory_are_refused(stack: Stack, where: str) -> None:
    """Every spelling MLflow accepts is checked: `artifactLocation` (protobuf's JSON name) and the UI's ajax route."""
    creds = stack.credentials()
    location = {"dotdot": f"file://{stack.home}/mlartifacts/../../planted", "outside": "file:///tmp/sprout-planted"
                }.get(where, (REPO_ROOT / "dags").as_uri())
    field = "artifactLocation" if where == "camelCase" else "artifact_location"
    api = "ajax-api" if where == "ajax" else "api"
    resp = httpx.post(f"{stack.mlflow}/{api}/2.0/mlflow/experiments/create", timeout=10,
                      auth=(creds["mlflow user"], creds["mlflow password"]),
                      json={"name": f"planted-{where}", field: location})
    assert resp.status_code == 400, resp.text
    assert "artifact destination" in resp.json()["message"]
    found = httpx.get(f"{stack.mlflow}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name":
                      f"planted-{where}"}, auth=(creds["mlflow user"], creds["mlflow password"]), timeout=10)
    assert found.status_code == 404, found.text


def test_artifact_locations_inside_the_state_directory_are_accepted(stack: Stack) -> None:
    creds = stack.credentials()
    inside = (stack.home.resolve() / "mlartifacts" / "mine").as_uri()
    resp = httpx.post(f"{stack.mlflow}/api/2.0/mlflow/experiments/create", timeout=10,
                      auth=(creds["mlflow user"], creds["mlflow password"]),
                      json={"name": "inside", "artifact_location": inside})
    assert resp.status_code == 200, resp.text


def test_the_api_logs_in_to_airflow_as_sprout_not_the_admin(stack: Stack) -> None:
    """The API's Airflow login (the SPROUT_AIRFLOW_* of its process) is `sprout`, which Sprout's auth manager lets
    start Sprout's DAGs and announce approvals but not pause a DAG nor write a variable; the admin stays in
    credentials.txt for the operator."""
    api = stack.environ("api")
    creds = stack.credentials()
    assert api["SPROUT_AIRFLOW_USERNAME"] == "sprout" != creds["airflow user"]
    assert api["SPROUT_AIRFLOW_PASSWORD"] != creds["airflow password"]

    def headers(user: str, password: str) -> dict[str, str]:
        resp = httpx.post(f"{stack.airflow}/auth/token", json={"username": user, "password": password}, timeout=10)
        assert resp.status_code < 300, resp.text
        return {"Authorization": f"Bearer {resp.json()['access_token']}"}

    headers(creds["airflow user"], creds["airflow password"])
    sprout = headers("sprout", api["SPROUT_AIRFLOW_PASSWORD"])
    assert httpx.get(f"{stack.airflow}/api/v2/dags", headers=sprout, timeout=10).status_code == 200
    pause = httpx.patch(f"{stack.airflow}/api/v2/dags/sprout_retrain", json={"is_paused": True}, headers=sprout,
                        timeout=10)
    assert pause.status_code == 403, pause.text
    variable = httpx.post(f"{stack.airflow}/api/v2/variables", json={"key": "planted", "value": "1"},
                          headers=sprout, timeout=10)
    assert variable.status_code == 403, variable.text


def listening_sockets(pids: set[int]) -> set[tuple[str, int]]:
    """(address in hex as /proc/net/tcp* writes it, port) of the TCP sockets in LISTEN that ``pids`` hold."""
    inodes: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                address, port = fields[1].rsplit(":", 1)
                found.add((address, int(port, 16)))
    return found


def test_the_state_is_private_and_nothing_listens_beyond_loopback(stack: Stack) -> None:
    """The state directory is the owner's alone, and every server the stack started (API, UI, MLflow, Airflow's
    components and their children) listens on 127.0.0.1 only."""
    assert stat.S_IMODE(stack.home.stat().st_mode) == 0o700
    assert stat.S_IMODE((stack.home / "mlflow-auth" / "secrets.env").stat().st_mode) == 0o600
    groups = {int(p.read_text()) for p in (stack.home / "run").glob("*.pid")}
    pids = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if os.getpgid(int(proc.name)) in groups:
                    pids.add(int(proc.name))
    sockets = listening_sockets(pids)
    loopback = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1, ::1
    assert {address for address, _ in sockets} <= loopback, sockets
    ports = {int(urlsplit(url).port or 0) for url in (stack.mlflow, stack.airflow)}
    assert ports <= {port for _, port in sockets}, sockets


def test_the_real_stack_starts_behind_logins_and_stops(tmp_path: Path) -> None:
    """`SPROUT_STACK=real make up` (PostgreSQL, SeaweedFS, MLflow on Postgres and S3): MLflow refuses anonymous
    calls, the API logs in to MLflow as its own user and to Airflow as `sprout`, and `make down` stops it all,
    PostgreSQL included (as root its cluster lives outside the owner-only state directory)."""
    with make_up(tmp_path / "home", SPROUT_STACK="real") as real:
        assert httpx.get(f"{real.mlflow}/api/2.0/mlflow/registered-models/search", timeout=10).status_code == 401
        api = real.environ("api")
        assert (api["MLFLOW_TRACKING_USERNAME"], api["SPROUT_AIRFLOW_USERNAME"]) == ("sprout-api", "sprout")
        assert httpx.get(f"{real.api}/readyz", timeout=10).json()["checks"]["database"] == "ok"
        assert httpx.get(f"{real.api}/models", timeout=10).status_code == 200  # read with the API's own login
        pgdata = Path((real.home / "stack" / "pgdata").read_text().strip())
        assert (pgdata / "postmaster.pid").exists()
    assert not (pgdata / "postmaster.pid").exists()
    if pgdata.parent.parent == Path("/var/lib/sprout-postgresql"):  # as root: the cluster of this test's home
        shutil.rmtree(pgdata.parent)
