"""Rate limits (the ``limits`` library): 429 with ``Retry-After``.

The counts live in each API process's memory, or in the Redis (or Valkey) that ``SPROUT_RATE_LIMIT_STORAGE``
names, which every API process shares: with the memory store N processes allow N times each limit.

Request rates (uploads, predictions) use moving windows. Logins count failures only, per (user name, client
address), per client address and per user name from all addresses (a much higher limit: guesses spread over many
addresses, e.g. the 65,536 /64s of an IPv6 /48, stop there, at the price that such an attacker can lock that one
name out), in fixed windows that start at the first failure: an attempt is counted before the password is checked
and handed back when it was right, so a burst of concurrent guesses cannot all pass a check made before the others
were counted.

The client address is the socket peer's; an ``X-Forwarded-For`` chain counts only when the peer is one of
``SPROUT_TRUSTED_PROXIES`` (uvicorn's ProxyHeadersMiddleware, installed by ``api.main``: the right-most address
no trusted proxy owns). IPv6 clients count per /64 network, what one subscriber gets.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request, status
from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

from model.core.settings import Settings

log = logging.getLogger("sprout.api")
STORE_TIMEOUT_S = 2.0  # a shared store that hangs must not hang the requests it counts
MAX_NAME_KEY = 64  # user names are at most 64 characters; longer ones (all unknown) share their first 64


@dataclass(frozen=True)
class Counted:
    """One limit (``"10/minute"``) on the attempts of one key (``("login-ip", address)``)."""

    limit: str
    keys: tuple[str, ...]


def too_many(reset_time: float) -> HTTPException:
    retry_after = max(1, math.ceil(reset_time - time.time()))
    return HTTPException(status_code=status.HTTP_429_TOO_MANY_REQUESTS,
                         detail=f"Too many requests; try again in {retry_after} s.",
                         headers={"Retry-After": str(retry_after)})


class Throttle:
    """Named limits over one store: ``hit`` for request rates, ``attempt`` for failures (logins)."""

    def __init__(self, storage: Storage | None = None) -> None:
        self.storage = storage or MemoryStorage()
        self._rates = MovingWindowRateLimiter(self.storage)
        self._attempts = FixedWindowRateLimiter(self.storage)

    @classmethod
    def from_uri(cls, uri: str | None) -> Throttle:
        """This process's memory (``None``, ``memory://``) or a shared store (``redis://:PASSWORD@HOST:6379/0``)."""
        uri = uri or "memory://"
        options = {} if uri.startswith("memory://") else {"socket_timeout": STORE_TIMEOUT_S,
                                                          "socket_connect_timeout": STORE_TIMEOUT_S}
        storage = storage_from_string(uri, wrap_exceptions=True, **options)
        if not isinstance(storage, Storage):  # async+... schemes: the API counts from worker threads
            raise ValueError(f"not a synchronous rate-limit store: {uri.split('://')[0]}://")
        return cls(storage)

    def hit(self, limit: str, *keys: str, cost: int = 1) -> None:
        """Count ``cost`` requests against ``limit`` for ``keys``; 429 with Retry-After when it is used up.

        A store that does not answer lets the request through (logged): rates guard capacity, not secrets.
        """
        item: RateLimitItem = parse(limit)
        try:
            if self._rates.hit(item, *keys, cost=cost):
                return
            reset = self._rates.get_window_stats(item, *keys).reset_time
        except StorageError as exc:
            log.warning("rate-limit store unreachable, %s not counted: %s", keys[0] if keys else limit,
                        exc.storage_error)
            return
        raise too_many(reset)

    def attempt(self, *counted: Counted) -> Callable[[], None]:
        """Count one attempt against each limit and return what hands it back (call it when the attempt succeeded:
        only failures count). 429 with Retry-After when a limit is used up (the refused attempt counts nowhere);
        503 when the store does not answer (guessing is not let through unthrottled)."""
        taken: list[tuple[RateLimitItem, tuple[str, ...]]] = []
        try:
            for each in counted:
                item = parse(each.limit)
                taken.append((item, each.keys))
                if not self._attempts.hit(item, *each.keys):
                    reset = self._attempts.get_window_stats(item, *each.keys).reset_time
                    self._give_back(taken)
                    raise too_many(reset)
        except StorageError as exc:
            log.error("rate-limit store unreachable, attempt refused: %s", exc.storage_error)
            raise HTTPException(status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
                                detail="Logins are unavailable for a moment; try again shortly.") from None
        return lambda: self._give_back(taken)

    def _give_back(self, taken: list[tuple[RateLimitItem, tuple[str, ...]]]) -> None:
        try:
            for item, keys in taken:
                self.storage.incr(item.key_for(*keys), item.get_expiry(), amount=-1)
        except StorageError as exc:
            log.warning("rate-limit store unreachable, an attempt stays counted: %s", exc.storage_error)


def client_address(request: Request) -> str:
    """The client's address (the peer's, or what trusted proxies forwarded); IPv6 as its /64 network."""
    host = request.client.host if request.client else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:MAX_NAME_KEY]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def login_attempt(throttle: Throttle, request: Request, settings: Settings, username: str) -> Callable[[], None]:
    """Count a login attempt for ``username`` from the client's address (see ``Throttle.attempt``)."""
    address = client_address(request)
    name = username.lower()[:MAX_NAME_KEY]
    return throttle.attempt(Counted(f"{settings.login_failures_per_user}/minute", ("login-user", name, address)),
                            Counted(f"{settings.login_failures_per_address}/minute", ("login-ip", address)),
                            Counted(f"{settings.login_failures_per_user_any_address}/minute", ("login-name", name)))


def count_predictions(throttle: Throttle, request: Request, settings: Settings, images: int = 1) -> None:
    """Count ``images`` predictions (``/predict``, ``/v2`` infer) for the client's address against
    ``SPROUT_PREDICTIONS_PER_MINUTE`` (0: no limit); 429 with Retry-After beyond. Called on a prediction thread:
    a shared store that is slow to answer holds that thread, never the event loop."""
    if settings.predictions_per_minute and images > 0:
        throttle.hit(f"{settings.predictions_per_minute}/minute", "predict-ip", client_address(request), cost=images)
