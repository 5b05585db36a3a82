"""Memory of a running process, as Linux reports it (``/proc/PID/status``): what the memory benchmarks read."""

from __future__ import annotations

import subprocess
from pathlib import Path


def status_kb(pid: int, field: str) -> int:
    """A ``kB`` field of ``/proc/PID/status`` (``VmRSS``, ``VmHWM``, ...)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def api_pid(port: int) -> int:
    """The pid of the uvicorn serving on ``port`` (started with ``--port PORT``)."""
    out = subprocess.run(["pgrep", "-f", "--", f"--port {port}"], capture_output=True, text=True).stdout.split()
    return int(out[0])
