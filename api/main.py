"""The Sprout API: ``uvicorn api.main:app`` (settings from ``SPROUT_*``), or ``create_app(settings)`` in tests."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from sqlalchemy.exc import InterfaceError, OperationalError
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from api.errors import install_error_handlers
from api.headers import SecurityHeadersMiddleware
from api.metrics import (
    CANARY_ANSWERS,
    CAPTURES,
    DRIFT,
    MODEL_REJECTED,
    ROLLOUT,
    ROLLOUT_SCORED,
    TRAINING,
    MetricsMiddleware,
)
from api.prediction_pool import PredictionPool, predict_threads
from api.routes import auth, health, labels, models, predict, retrain, reviews, rollouts, samples
from api.state import AppState, install
from api.throttle import Throttle
from api.uploads import BodySizeLimitMiddleware
from api.v2 import routes as v2
from db.migrate import SchemaOutOfDateError
from model.core.security import signing_key
from model.core.settings import Settings, get_settings
from model.monitoring.drift import DriftMonitor
from model.rollout.monitor import RolloutMonitor
from model.runtime.live_rollout import LiveRollout
from model.runtime.services import Services
from model.runtime.traffic import PredictionRecorder
from model.serving.capture import CapturePolicy, Capturer
from model.serving.registry import CHALLENGER, CHAMPION
from model.serving.watcher import ModelWatcher

log = logging.getLogger("sprout.api")
WORKER_THREADS = 100
GIL_SWITCH_INTERVAL_S = 0.001  # Python's default is 0.005


def connect(settings: Settings) -> Services:
    """The services; refuses (SchemaOutOfDateError) a database behind the code's migrations.

    A database that cannot be reached yet is not fatal: requests that need it answer 503 until it is up.
    """
    try:
        return Services.from_settings(settings)
    except SchemaOutOfDateError as exc:
        log.critical("%s", exc)
        raise
    except (OperationalError, InterfaceError) as exc:
        log.error("database unreachable at start-up (%s); serving 503s until it answers", exc.orig)
        return Services.from_settings(settings, check=False)


def capturer(services: Services) -> Capturer:
    """Production capture as configured (it only runs when ``SPROUT_CAPTURE_*`` turn it on)."""
    s = services.settings
    policy = CapturePolicy(below=s.capture_below, sample_rate=s.capture_sample_rate, per_hour=s.capture_per_hour,
                           per_day=s.capture_per_day)
    return Capturer(policy, services.session, services.store, near_duplicates=services.near_duplicates,
                    max_pixels=s.max_image_pixels, max_pending=s.max_pending_samples,
                    on_result=lambda result: CAPTURES.labels(result).inc())


def make_lifespan(settings: Settings):  # type: ignore[no-untyped-def]
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        """Connect the services, load the champion and follow its alias, record predictions for the drift window
        and refresh the drift report until shutdown."""
        # Uploads and reviews that wait on a hung store or database hold a worker thread for up to ~10 s
        # (their timeouts); more threads keep the queue short. Predictions have threads of their own, and the
        # decodes and model runs of every request (uploads' too) share the champion's predict_threads slots.
        anyio.to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
        # The event loop asks for the GIL after every socket call; with worker threads running Python (uploads,
        # reviews) it waited up to 5 ms a time for it, so /readyz under a burst of uploads took 1.7 s, not 1.1.
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        services = connect(settings)
        threads = predict_threads(settings.predict_threads)
        slots = threading.BoundedSemaphore(threads)  # shared by the champion and the challenger
        watcher, challenger = (ModelWatcher(
            services.registry, poll_seconds=settings.model_poll_seconds, threads=1, alias=alias,
            max_pixels=settings.max_image_pixels, verify=services.verify_artifact, slots=slots,
            on_reject=lambda _version, _reason: MODEL_REJECTED.inc()) for alias in (CHAMPION, CHALLENGER))
        rollout = LiveRollout(challenger, services.sessions, shadow_share=settings.shadow_share,
                              canary_share=settings.canary_share, queue_size=settings.shadow_queue,
                              max_observations=settings.rollout_max_observations,
                              on_scored=lambda mode, outcome: ROLLOUT_SCORED.labels(mode, outcome).inc(),
                              on_answer=lambda model: CANARY_ANSWERS.labels(model).inc())
        recorder = PredictionRecorder.from_settings(services.sessions, settings)
        drift = DriftMonitor(services, lambda: watcher.version)
        rollout_metrics = RolloutMonitor(services)
        TRAINING.services = services
        DRIFT.recorder, DRIFT.monitor = recorder, drift
        ROLLOUT.monitor = rollout_metrics
        key, storage = signing_key(settings), settings.rate_limit_storage
        throttle = Throttle.from_uri(storage.get_secret_value() if storage else None)
        state = AppState(services=services, watcher=watcher, rollout=rollout, recorder=recorder, drift=drift,
                         signing_key=key, throttle=throttle, capture=capturer(services),
                         predictions=PredictionPool(threads))
        install(app, state)
        threading.Thread(target=_warm_index, args=(services,), name="sprout-index-warmup", daemon=True).start()
        watcher.start()
        challenger.start()
        rollout.start(settings.model_poll_seconds)
        state.capture.start()
        recorder.start()
        drift.start()
        rollout_metrics.start()
        try:
            yield
        finally:
            rollout_metrics.stop()
            drift.stop()
            recorder.stop()
            watcher.stop()
            challenger.stop()
            rollout.stop()
            state.capture.stop()
            state.predictions.shutdown()
            services.close()
            sys.setswitchinterval(switch_interval)

    return lifespan


def _warm_index(services: Services) -> None:
    """Load the near-duplicate index in the background at start (an upload meanwhile syncs it itself)."""
    try:
        log.info("near-duplicate index ready: %d embeddings", services.warm_near_duplicates())
    except Exception as exc:  # the database not there yet: the first upload syncs it
        log.warning("near-duplicate index not warmed at start: %s", exc)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API for these settings (default: the process's ``SPROUT_*`` settings)."""
    settings = settings or get_settings()
    app = FastAPIOffline(  # /docs and /redoc serve Swagger UI and ReDoc from the installed package, not a CDN
        title="Sprout",
        summary="Image classification with human-in-the-loop labeling and continuous training.",
        version="0.1.0",
        static_url="/docs/assets",  # under /docs: the Ingress's /docs prefix (helm ingress.api.docs) serves them too
        lifespan=make_lifespan(settings),
    )
    install_error_handlers(app)
    for router in (predict.router, samples.router, auth.router, reviews.router, labels.router, models.router,
                   rollouts.router, retrain.router, health.router, v2.router):
        app.include_router(router)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=int(settings.max_upload_mb * 1024 * 1024))
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)
    if settings.trusted_proxy_list:  # outermost: every route and the throttle see the forwarded client address
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxy_list)
    return app


app = create_app()
