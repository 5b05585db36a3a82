"""Crash points for fault-injection tests: ``SPROUT_CRASH_AT=<point>`` kills the process (SIGKILL) there.

Only tests set it (the setting is refused in production); a crash point costs one comparison otherwise.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Literal

log = logging.getLogger(__name__)

CrashPoint = Literal["move.after_copy", "move.after_commit"]
_armed: str | None = None


def arm(point: CrashPoint | None) -> None:
    """Make ``crash_point(point)`` kill this process (``None`` disarms)."""
    global _armed
    _armed = point


def crash_point(name: CrashPoint) -> None:
    """Die here, as ``kill -9`` would, when this point is armed."""
    if _armed == name:
        log.critical("fault injection: killing the process at %s", name)
        os.kill(os.getpid(), signal.SIGKILL)
