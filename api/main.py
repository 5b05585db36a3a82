"""The Sprout API: ``uvicorn api.main:app``. Settings come from ``SPROUT_*`` variables."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.errors import install_error_handlers
from api.metrics import TRAINING, MetricsMiddleware
from api.routes import auth, health, models, predict, retrain, reviews, samples
from api.uploads import BodySizeLimitMiddleware
from model.security import signing_key
from model.services import Services
from model.serving import ChampionWatcher
from model.settings import get_settings

log = logging.getLogger("sprout.api")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Connect the services, load the champion and follow its alias until shutdown."""
    settings = get_settings()
    try:
        services = Services.from_settings(settings, migrate=True)
    except Exception as exc:  # the database may come up later: serve 503s until then
        log.error("database migration failed at start-up (%s); continuing without it", exc)
        services = Services.from_settings(settings, migrate=False)
    watcher = ChampionWatcher(services.registry, poll_seconds=settings.model_poll_seconds, threads=1)
    app.state.services, app.state.watcher = services, watcher
    TRAINING.services = services
    app.state.signing_key = signing_key(settings)
    watcher.start()
    try:
        yield
    finally:
        watcher.stop()
        services.close()


def create_app() -> FastAPI:
    settings = get_settings()
    app = FastAPI(
        title="Sprout",
        summary="Image classification with human-in-the-loop labeling and continuous training.",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    for router in (predict.router, samples.router, auth.router, reviews.router, models.router, retrain.router,
                   health.router):
        app.include_router(router)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=int(settings.max_upload_mb * 1024 * 1024))
    app.add_middleware(MetricsMiddleware)
    return app


app = create_app()
