"""/healthz (process alive), /readyz (database, storage and model checked), /metrics, /events."""

from functools import cache

import anyio
from fastapi import APIRouter, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import ServicesDep, WatcherDep
from api.metrics import UI_PAGE_VIEWS, UI_PREDICT_CLICKS, observe_served_model
from api.schemas import Readiness, UsageEvent

router = APIRouter(tags=["health"])


@cache
def readiness_limiter() -> anyio.CapacityLimiter:
    return anyio.CapacityLimiter(4)


@router.get("/healthz")
async def read_health() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def read_readiness(services: ServicesDep, watcher: WatcherDep) -> JSONResponse:
    """Ready when the database and the object store answer and a model is being served (answers within ~2 s).

    The checks run on a thread of their own (not the shared workers, which uploads may hold while a
    dependency hangs), each bounded by 1.5 s.
    """
    checks = await anyio.to_thread.run_sync(lambda: services.check(timeout=1.0), limiter=readiness_limiter())
    checks["model"] = f"version {watcher.version}" if watcher.version else "no model promoted yet"
    ready = all(v == "ok" for k, v in checks.items() if k != "model") and watcher.version is not None
    body = Readiness(ready=ready, checks=checks).model_dump()
    return JSONResponse(body, status_code=status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE)


@router.get("/metrics", include_in_schema=False)
def read_metrics(watcher: WatcherDep) -> Response:
    """Prometheus exposition."""
    current = watcher.current
    observe_served_model(current.version if current else None, current.labels if current else [])
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.post("/events", status_code=status.HTTP_204_NO_CONTENT, tags=["usage"])
def create_usage_event(event: UsageEvent) -> Response:
    """Usage from the Streamlit app: page views (once per session and page) and predict clicks."""
    if event.action == "view":
        UI_PAGE_VIEWS.labels(event.page.value).inc()
    else:
        UI_PREDICT_CLICKS.inc()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
