"""Domain errors → HTTP, in one place. Bodies are always ``{"detail": "<sentence>"}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError

from api.metrics import UNHANDLED_ERRORS
from model.errors import (
    ConflictError,
    ImageTooLargeError,
    InvalidImageError,
    InvalidLabelError,
    NoChampionError,
    NotEnoughDataError,
    NotFoundError,
    OrchestratorUnavailableError,
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
    (NotFoundError, 404),
    (ConflictError, 409),
    (NotEnoughDataError, 409),
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


def _is_mlflow_unavailable(exc: Exception) -> bool:
    from mlflow.exceptions import MlflowException
    from requests.exceptions import RequestException

    return isinstance(exc, MlflowException | RequestException)


def install_error_handlers(app: FastAPI) -> None:
    """Map Sprout errors, database and registry outages; anything else is a logged, counted 500."""

    @app.exception_handler(SproutError)
    async def sprout_error(_request: Request, exc: SproutError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status_for(exc))

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    async def database_down(_request: Request, exc: Exception) -> JSONResponse:
        log.error("database error: %s", exc)
        return JSONResponse({"detail": "The database is unavailable; try again shortly."}, status_code=503)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        if _is_mlflow_unavailable(exc):
            log.error("model registry error: %s", exc)
            return JSONResponse({"detail": "The model registry is unavailable; try again shortly."},
                                status_code=503)
        request_id = request.headers.get("x-request-id", "-")
        log.exception("unhandled error (request id %s)", request_id)
        UNHANDLED_ERRORS.inc()
        return JSONResponse({"detail": "Internal server error."}, status_code=500)
