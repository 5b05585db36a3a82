"""A throwaway Redis server (``redis-server`` from ``PATH``: Debian's ``redis-server`` package)."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from tests.servers.processes import HOST, Process, ProcessExited, free_port, make_tmpdir, require, wait_ready


def find_redis() -> str:
    return require(shutil.which("redis-server"), "redis-server",
                    "install Debian's redis-server package (scripts/install-test-deps.sh)")


@contextmanager
def redis_server(*, timeout: float = 30) -> Iterator[str]:
    """A Redis server on 127.0.0.1 with a random password and no persistence; yields its ``redis://`` URL."""
    import redis

    binary = find_redis()
    tmp = make_tmpdir("sprout-redis-")
    password = secrets.token_hex(16)
    proc: Process | None = None
    try:
        for attempt in range(3):  # a chosen port can be taken before Redis binds it
            port = free_port()
            conf = tmp / f"redis-{attempt}.conf"
            conf.write_text(f"bind {HOST}\nport {port}\nrequirepass {password}\nsave \"\"\nappendonly no\n"
                            f"dir {tmp}\n")
            conf.chmod(0o600)
            proc = Process("redis-server", [binary, str(conf)], tmp / f"redis-{attempt}.log", cwd=tmp)
            url = f"redis://:{password}@{HOST}:{port}/0"
            try:
                wait_ready(proc, redis.Redis.from_url(url, socket_timeout=2).ping, timeout, "Redis")
                break
            except ProcessExited:
                proc.stop()
                if attempt == 2:
                    raise
        yield url
    finally:
        if proc is not None:
            proc.stop()
        shutil.rmtree(tmp, ignore_errors=True)

