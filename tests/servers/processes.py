"""What every test server shares: free ports on 127.0.0.1, temporary directories, finding binaries, a server
process in its own process group, waiting until it answers, and the check that the running test may start one."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.utils.markers import require_marker
from tests.utils.readiness import ProcessExited, ServerStartError, tail, wait_until_ready

HOST = "127.0.0.1"


def check_start(what: str) -> None:
    """Fail the running test if it is not marked ``server`` (``make test-fast`` runs unmarked tests)."""
    require_marker("server", what)


def port_is_free(port: int) -> bool:
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


def free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def free_port_with_offset(offset: int, avoid: Sequence[int] = ()) -> int:
    """A free port P with P + offset free too (for servers that derive a second port)."""
    rng = secrets.SystemRandom()
    for _ in range(200):
        port = rng.randrange(20000, 65535 - offset)
        if port in avoid or port + offset in avoid:
            continue
        if port_is_free(port) and port_is_free(port + offset):
            return port
    raise ServerStartError(f"no free port pair (P, P+{offset}) on {HOST}")


def make_tmpdir(prefix: str, *, world_readable: bool = False) -> Path:
    # Under root, PostgreSQL runs as the ``postgres`` user, which must be able to reach the directory,
    # so it lives directly in /tmp (not under a possibly private $TMPDIR) with mode 0755.
    base = "/tmp" if world_readable and os.geteuid() == 0 else None
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    if world_readable:
        path.chmod(0o755)
    return path


def require(path: Path | str | None, what: str, hint: str) -> str:
    if path is None or not Path(path).is_file() or not os.access(path, os.X_OK):
        raise ServerStartError(f"{what} not found; {hint}")
    return str(path)


def venv_script(name: str) -> str | None:
    """A console script installed next to the running interpreter (venv/bin), else on PATH."""
    # Do not resolve sys.executable: in a venv it is a symlink to the base interpreter.
    candidate = Path(sys.executable).parent / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which(name)


class Process:
    """A server process in its own process group, output to a log file."""

    def __init__(
        self, name: str, cmd: Sequence[str], log: Path, *, env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        check_start(name)
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


def wait_ready(proc: Process, probe: Callable[[], object], timeout: float, what: str) -> None:
    """Call ``probe()`` until it does not raise; fail fast if the process dies."""
    wait_until_ready(probe, what=what, timeout=timeout, proc=proc.proc, log=proc.log)



def run_to_log(cmd: list[str], log: Path, what: str, cwd: Path, timeout: float = 120) -> None:
    with open(log, "ab") as out:
        try:
            code = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                  cwd=cwd, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            code = -1
    if code != 0:
        raise ServerStartError(f"{what} failed (exit {code}); log {log}:\n{tail(log)}")



__all__ = ["HOST", "Process", "ProcessExited", "ServerStartError", "check_start", "free_port", "free_port_with_offset",
           "free_ports", "make_tmpdir", "port_is_free", "require", "run_to_log", "tail", "venv_script", "wait_ready"]
