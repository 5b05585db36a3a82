"""The application state: what the lifespan builds once per process; routes read it through ``api.deps``."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.applications import Starlette

from api.prediction_pool import PredictionPool
from api.throttle import Throttle
from model.monitoring.drift import DriftMonitor
from model.runtime.live_rollout import LiveRollout
from model.runtime.services import Services
from model.runtime.traffic import PredictionRecorder
from model.serving.capture import Capturer
from model.serving.watcher import ModelWatcher


@dataclass(frozen=True)
class AppState:
    """The services and the API's long-lived helpers (background threads, counters, the token key)."""

    services: Services
    watcher: ModelWatcher  # the champion, followed by its alias
    rollout: LiveRollout  # the challenger during a rollout: shadow scoring, canary routing, observations
    recorder: PredictionRecorder  # the drift window's buffered writer
    drift: DriftMonitor  # the drift report, refreshed in the background
    capture: Capturer  # low-confidence images to the review queue, in the background
    throttle: Throttle  # the rate limits
    predictions: PredictionPool  # the predictions' own threads
    signing_key: str  # signs and checks the reviewers' bearer tokens


def install(app: Starlette, state: AppState) -> None:
    """Make ``state`` the application's (once, in the lifespan)."""
    app.state.sprout = state


def app_state(app: Starlette) -> AppState:
    """The state ``install`` gave ``app`` (AttributeError outside its lifespan)."""
    state: AppState = app.state.sprout
    return state
