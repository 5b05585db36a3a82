"""Rate limits (the ``limits`` library, moving windows in this process's memory): 429 with ``Retry-After``.

Limits per process: with N API workers a client gets up to N times the limit, still bounded. The client
address is the socket peer's, or the forwarded one only when uvicorn trusts the proxy (FORWARDED_ALLOW_IPS).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from fastapi import HTTPException, Request, status
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

LOGIN_PER_IP = "30/minute"
LOGIN_PER_USERNAME = "10/minute"


@dataclass
class Throttle:
    """Named limits over one in-memory moving-window limiter."""

    limiter: MovingWindowRateLimiter = field(default_factory=lambda: MovingWindowRateLimiter(MemoryStorage()))

    def hit(self, limit: str, *keys: str) -> None:
        """Count one request against ``limit`` for ``keys``; 429 with Retry-After when it is used up."""
        item: RateLimitItem = parse(limit)
        if self.limiter.hit(item, *keys):
            return
        reset = self.limiter.get_window_stats(item, *keys).reset_time
        retry_after = max(1, math.ceil(reset - time.time()))
        raise HTTPException(status_code=status.HTTP_429_TOO_MANY_REQUESTS,
                            detail=f"Too many requests; try again in {retry_after} s.",
                            headers={"Retry-After": str(retry_after)})


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
