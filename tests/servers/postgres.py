"""A throwaway PostgreSQL cluster (``postgres_server``), its databases, and stopping it under a running test.

Binaries: ``initdb``/``pg_ctl``/``postgres`` from ``$SPROUT_TEST_PG_BIN``, ``PATH``, ``/usr/local/bin`` or
``/usr/lib/postgresql/<version>/bin`` (Debian's ``postgresql`` package). Under root the cluster runs as the
``postgres`` OS user.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.servers.processes import HOST, ServerStartError, check_start, free_port, make_tmpdir, require, run_to_log

PG_SUPERUSER = "postgres"
_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


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


def as_pg_user(cmd: list[str]) -> list[str]:
    """initdb/pg_ctl refuse to run as root: run them as the ``postgres`` OS user then."""
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser") or next(
        (p for p in ("/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser") if os.path.exists(p)), None
    )
    require(runuser, "runuser", "needed to run PostgreSQL as the 'postgres' user when tests run as root")
    return [str(runuser), "-u", PG_SUPERUSER, "--", *cmd]


def chown_tree_to_pg_user(root: Path) -> None:
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



def _pg_connect(url: str):  # type: ignore[no-untyped-def]
    import psycopg2
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return psycopg2.connect(host=u.host, port=u.port, user=u.username, password=u.password,
                            dbname=u.database, connect_timeout=10)


def _superuser_connect(sock: Path, port: int):  # type: ignore[no-untyped-def]
    import psycopg2

    return psycopg2.connect(host=str(sock), port=port, user=PG_SUPERUSER, dbname="postgres")


def superuser_connection(url: str):  # type: ignore[no-untyped-def]
    """A psycopg2 connection as the cluster superuser (its unix socket) to the cluster of ``url``."""
    cluster = _PG_CLUSTERS[url]
    return _superuser_connect(cluster.tmp / "sock", cluster.port)


def _checked(name: str) -> str:
    if not _NAME_RE.match(name):
        raise ValueError(f"invalid database name: {name!r}")
    return name


def _run_on_server(admin_url: str, statement: object) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE) on the server of ``admin_url``."""
    conn = _pg_connect(admin_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def create_database(admin_url: str, name: str) -> str:
    """Create database ``name`` (owned by the URL's role) on the server of ``admin_url``; return its URL."""
    from psycopg2 import sql
    from sqlalchemy.engine import make_url

    _run_on_server(admin_url, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(_checked(name))))
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, name: str) -> None:
    """Drop database ``name`` (terminating its open connections) if it exists."""
    from psycopg2 import sql

    _run_on_server(admin_url, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(_checked(name))))


@contextlib.contextmanager
def postgres_server(*, user: str = "sprout", dbname: str = "sprout", timeout: float = 60) -> Iterator[str]:
    """A throwaway PostgreSQL cluster; yields ``postgresql+psycopg2://user:pass@127.0.0.1:port/dbname``.

    The role may create databases (see ``create_database``); the cluster superuser ``postgres`` is only
    reachable through the unix socket inside the temp dir. Durability is off (fsync) for speed.
    """
    if not (_NAME_RE.match(user) and _NAME_RE.match(dbname)):
        raise ValueError("user and dbname must be lower-case identifiers")
    check_start("PostgreSQL")
    bindir = find_pg_bin()
    tmp = make_tmpdir("sprout-pg-", world_readable=True)
    data, sock, log = tmp / "data", tmp / "sock", tmp / "postgres.log"
    started = False
    url = ""
    try:
        sock.mkdir()
        log.touch()
        chown_tree_to_pg_user(tmp)
        run_to_log(as_pg_user([str(bindir / "initdb"), "-D", str(data), "-U", PG_SUPERUSER, "-E", "UTF8",
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
                run_to_log(as_pg_user([str(bindir / "pg_ctl"), "start", "-D", str(data), "-l", str(log),
                                  "-w", "-t", str(int(timeout)), "-o", f"-p {port}"]),
                     log, "pg_ctl start", cwd=tmp, timeout=timeout + 10)
                started = True
                break
            except ServerStartError:
                if attempt == 2:
                    raise
        password = secrets.token_hex(16)
        from psycopg2 import sql

        conn = _superuser_connect(sock, port)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD %s").format(sql.Identifier(user)),
                            (password,))
                cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(dbname),
                                                                           sql.Identifier(user)))
                # DROP DATABASE ... WITH (FORCE) checks every backend on the database, and an autovacuum
                # worker runs as no role: PostgreSQL 15 refuses unless the dropping role may signal backends.
                cur.execute(sql.SQL("GRANT pg_signal_backend TO {}").format(sql.Identifier(user)))
        finally:
            conn.close()
        url = f"postgresql+psycopg2://{user}:{password}@{HOST}:{port}/{dbname}"
        _PG_CLUSTERS[url] = _PgCluster(bindir, data, tmp, port, log)
        yield url
    finally:
        if started:
            _PG_CLUSTERS.pop(url, None)
            stop_postgres(bindir, data, tmp)
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
    run_to_log(as_pg_user([str(cluster.bindir / "pg_ctl"), "stop", "-D", str(cluster.data), "-m", "fast", "-w"]),
         cluster.tmp / "pg_ctl-stop.log", "pg_ctl stop", cwd=cluster.tmp, timeout=40)
    try:
        yield
    finally:
        run_to_log(as_pg_user([str(cluster.bindir / "pg_ctl"), "start", "-D", str(cluster.data), "-l", str(cluster.log),
                          "-w", "-t", str(int(timeout)), "-o", f"-p {cluster.port}"]),
             cluster.log, "pg_ctl start", cwd=cluster.tmp, timeout=timeout + 10)


def stop_postgres(bindir: Path, data: Path, tmp: Path) -> None:
    try:
        run_to_log(as_pg_user([str(bindir / "pg_ctl"), "stop", "-D", str(data), "-m", "fast", "-w", "-t", "30"]),
             tmp / "pg_ctl-stop.log", "pg_ctl stop", cwd=tmp, timeout=40)
    except ServerStartError:
        # Last resort: kill the postmaster named in its pid file.
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((data / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, signal.SIGKILL)

