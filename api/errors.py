"""Domain errors → HTTP, in one place. Bodies are always ``{"detail": "<sentence>"}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from api.metrics import UNHANDLED_ERRORS
from model.core.errors import (
    ConflictError,
    ForbiddenError,
    ImageTooLargeError,
    InvalidCursorError,
    InvalidImageError,
    InvalidLabelError,
    NoChampionError,
    NotEnoughDataError,
    NotFoundError,
    OrchestratorUnavailableError,
    QueueFullError,
    RegistryUnavailableError,
    SproutError,
    StorageUnavailableError,
    UnsupportedMediaError,
)

log = logging.getLogger(__name__)

STATUS: list[tuple[type[SproutError], int]] = [
    (InvalidImageError, 400),
    (ImageTooLargeError, 413),
    (UnsupportedMediaError, 415),
    (InvalidLabelError, 422),
    (InvalidCursorError, 422),
    (ForbiddenError, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (NotEnoughDataError, 409),
    (QueueFullError, 429),
    (NoChampionError, 503),
    (StorageUnavailableError, 503),
    (RegistryUnavailableError, 503),
    (OrchestratorUnavailableError, 503),
]


def status_for(exc: SproutError) -> int:
    for cls, code in STATUS:
        if isinstance(exc, cls):
            return code
    return 400


def install_error_handlers(app: FastAPI) -> None:
    """Map Sprout errors and connection-level database failures; anything else is a logged, counted 500.

    The registry wraps MLflow's failures into RegistryUnavailableError, so nothing here knows MLflow.
    """

    @app.exception_handler(SproutError)
    async def sprout_error(_request: Request, exc: SproutError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status_for(exc))

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(PoolTimeoutError)  # every connection busy (e.g. waiting on a hung server)
    async def database_down(_request: Request, exc: Exception) -> JSONResponse:
        log.error("database unavailable: %s", exc)
        return JSONResponse({"detail": "The database is unavailable; try again shortly."}, status_code=503)

    @app.exception_handler(IntegrityError)
    async def integrity_conflict(_request: Request, exc: IntegrityError) -> JSONResponse:
        log.warning("integrity conflict: %s", exc.orig)
        return JSONResponse({"detail": "The request conflicts with the current state; reload and try again."},
                            status_code=409)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, _exc: Exception) -> JSONResponse:
        request_id = request.headers.get("x-request-id", "-")
        log.exception("unhandled error (request id %s)", request_id)
        UNHANDLED_ERRORS.inc()
        return JSONResponse({"detail": "Internal server error."}, status_code=500)
