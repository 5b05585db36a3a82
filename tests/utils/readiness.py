"""The one "start a server, then poll until it answers" helper (tests/servers/, the live API, Streamlit, bench/)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
from tenacity import Retrying, retry_if_not_exception_type, stop_after_delay, wait_fixed


class ServerStartError(RuntimeError):
    """A server did not become ready in time."""


class ProcessExited(ServerStartError):
    """The server's process died while it was starting (a retry cannot help)."""


def tail(path: Path | None, lines: int = 40) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def http_ok(url: str, *, body: str | None = None, timeout: float = 5) -> Callable[[], None]:
    """A probe that passes when ``GET url`` answers 200 (and, with ``body``, exactly that text)."""

    def probe() -> None:
        resp = httpx.get(url, timeout=timeout)
        if resp.status_code != 200 or (body is not None and resp.text != body):
            raise ServerStartError(f"GET {url}: {resp.status_code} {resp.text[:300]}")

    return probe


def wait_until_ready(
    probe: Callable[[], object], *, what: str, timeout: float, proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None, interval: float = 0.2,
) -> None:
    """Call ``probe()`` until it stops raising; ProcessExited at once when ``proc`` dies, else ServerStartError
    after ``timeout`` seconds (both with the end of the server's log)."""

    def attempt() -> None:
        if proc is not None and proc.poll() is not None:
            raise ProcessExited(f"{what} exited with code {proc.returncode} during start; log {log}:\n{tail(log)}")
        probe()

    try:
        for att in Retrying(stop=stop_after_delay(timeout), wait=wait_fixed(interval),
                            retry=retry_if_not_exception_type(ProcessExited), reraise=True):
            with att:
                attempt()
    except ProcessExited:
        raise
    except Exception as exc:
        raise ServerStartError(f"{what} not ready after {timeout:.0f}s ({type(exc).__name__}: {exc}); "
                               f"log {log}:\n{tail(log)}") from exc
