"""Engine and session factories. URLs are passed in; nothing here reads the environment.

Every wait on PostgreSQL is bounded: connecting (``connect_timeout``), waiting for a pooled connection
(``pool_timeout``) and every round trip (a psycopg2 wait callback with a deadline), so a frozen or
partitioned server raises OperationalError (HTTP 503) within ``timeout`` seconds instead of hanging.
"""

from __future__ import annotations

import select
import time

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_TIMEOUT_S = 5.0
_deadline = {"seconds": DEFAULT_TIMEOUT_S}


def normalize_url(url: str) -> str:
    """Use psycopg2 for plain ``postgresql://`` URLs (SQLAlchemy 2.1 defaults to psycopg 3)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def _wait_with_deadline(conn) -> None:  # type: ignore[no-untyped-def]
    """psycopg2 wait callback: like ``psycopg2.extras.wait_select``, but gives up after the deadline."""
    import psycopg2
    from psycopg2.extensions import POLL_OK, POLL_READ, POLL_WRITE, STATUS_SETUP

    # Connecting gets a shorter bound than a round trip: a pooled connection that failed its ping is
    # replaced at once, so ping + reconnect together stay within ~1.5 × the round-trip bound.
    seconds = _deadline["seconds"] / 2 if conn.status == STATUS_SETUP else _deadline["seconds"]
    deadline = time.monotonic() + seconds
    while True:
        state = conn.poll()
        if state == POLL_OK:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise psycopg2.OperationalError(
                f"the database did not answer within {seconds:g} s (server closed the connection "
                "unexpectedly)")  # the wording SQLAlchemy reads as a disconnect: the connection is discarded
        if state == POLL_READ:
            select.select([conn.fileno()], [], [], remaining)
        elif state == POLL_WRITE:
            select.select([], [conn.fileno()], [], remaining)
        else:  # pragma: no cover - psycopg2 documents no other state
            raise psycopg2.OperationalError(f"bad poll state {state}")


def make_engine(url: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> Engine:
    """Create an engine; SQLite gets foreign keys, WAL and a busy timeout; PostgreSQL bounded waits.

    Statement parameters never appear in logs or error messages (``hide_parameters``).
    """
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, hide_parameters=True, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.close()

        return engine
    if url.startswith("postgresql+psycopg2"):
        import psycopg2.extensions

        _deadline["seconds"] = timeout
        psycopg2.extensions.set_wait_callback(_wait_with_deadline)  # process-wide: every psycopg2 connection
    return create_engine(url, pool_pre_ping=True, pool_timeout=timeout / 2, pool_size=10, max_overflow=20,
                         hide_parameters=True,
                         connect_args={"connect_timeout": max(1, int(timeout))} if "psycopg2" in url else {})


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Session factory that keeps objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)
