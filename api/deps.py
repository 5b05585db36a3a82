"""Every FastAPI dependency: the application state and what routes read from it (settings, services, sessions,
storage, the predictor, the throttle, capture, the prediction threads), and the current reviewer.

The ones that never block are ``async``: FastAPI then resolves them in the event loop, not on the shared
worker threads, so ``/predict`` never waits for a thread that an upload holds while storage hangs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from api.prediction_pool import PredictionPool
from api.state import AppState, app_state
from api.throttle import Throttle
from db import queries
from db.models import User
from model.core.accounts import is_current, is_revoked
from model.core.security import InvalidTokenError, TokenClaims, read_access_token
from model.core.settings import Settings
from model.data.storage import ObjectStore
from model.monitoring.drift import DriftMonitor
from model.runtime.live_rollout import LiveRollout
from model.runtime.services import Services
from model.runtime.traffic import PredictionRecorder
from model.serving.capture import Capturer
from model.serving.predictor import Predictor
from model.serving.watcher import ModelWatcher

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)


async def get_app_state(request: Request) -> AppState:
    """What the lifespan built (the one place that reads ``app.state``)."""
    return app_state(request.app)


AppStateDep = Annotated[AppState, Depends(get_app_state)]


async def get_services(state: AppStateDep) -> Services:
    return state.services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_settings_dep(services: ServicesDep) -> Settings:
    return services.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def get_session(services: ServicesDep) -> Iterator[Session]:
    with services.session() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


async def get_store(services: ServicesDep) -> ObjectStore:
    return services.store


StorageDep = Annotated[ObjectStore, Depends(get_store)]


async def get_watcher(state: AppStateDep) -> ModelWatcher:
    return state.watcher


WatcherDep = Annotated[ModelWatcher, Depends(get_watcher)]


async def get_predictor(watcher: WatcherDep) -> Predictor:
    """The champion predictor (NoChampionError → 503 when none is promoted)."""
    return watcher.predictor


PredictorDep = Annotated[Predictor, Depends(get_predictor)]


async def get_recorder(state: AppStateDep) -> PredictionRecorder:
    """The buffered writer of the window of recent predictions (never blocks)."""
    return state.recorder


RecorderDep = Annotated[PredictionRecorder, Depends(get_recorder)]


async def get_drift_monitor(state: AppStateDep) -> DriftMonitor:
    return state.drift


DriftMonitorDep = Annotated[DriftMonitor, Depends(get_drift_monitor)]


async def get_rollout(state: AppStateDep) -> LiveRollout:
    """The challenger's side of this process during a rollout (inactive without one)."""
    return state.rollout


RolloutDep = Annotated[LiveRollout, Depends(get_rollout)]


async def get_capture(state: AppStateDep) -> Capturer:
    """The background capture of low-confidence images (``offer`` never blocks)."""
    return state.capture


CaptureDep = Annotated[Capturer, Depends(get_capture)]


async def get_throttle(state: AppStateDep) -> Throttle:
    return state.throttle


ThrottleDep = Annotated[Throttle, Depends(get_throttle)]


async def get_prediction_pool(state: AppStateDep) -> PredictionPool:
    return state.predictions


PredictionPoolDep = Annotated[PredictionPool, Depends(get_prediction_pool)]


async def get_signing_key(state: AppStateDep) -> str:
    return state.signing_key


SigningKeyDep = Annotated[str, Depends(get_signing_key)]
TokenDep = Annotated[str | None, Depends(oauth2_scheme)]

UNAUTHORIZED = HTTPException(
    status_code=status.HTTP_401_UNAUTHORIZED,
    detail="Could not validate credentials.",
    headers={"WWW-Authenticate": "Bearer"},
)


def get_token_claims(key: SigningKeyDep, session: SessionDep, token: TokenDep) -> TokenClaims:
    """The claims of the bearer token; 401 for a missing, expired, forged or revoked (logged out) token."""
    if not token:
        raise UNAUTHORIZED
    try:
        claims = read_access_token(token, key=key)
    except InvalidTokenError:
        raise UNAUTHORIZED from None
    if is_revoked(session, claims):
        raise UNAUTHORIZED
    return claims


TokenClaimsDep = Annotated[TokenClaims, Depends(get_token_claims)]


def get_current_reviewer(session: SessionDep, claims: TokenClaimsDep) -> User:
    """The active reviewer the valid bearer token names, if issued since the account's last new password or
    disabling; 401 otherwise."""
    user = queries.get_user(session, username=claims.subject)
    if user is None or not user.is_active or not is_current(user, claims):
        raise UNAUTHORIZED
    return user


CurrentReviewer = Annotated[User, Depends(get_current_reviewer)]


def get_optional_reviewer(key: SigningKeyDep, session: SessionDep, token: TokenDep) -> User | None:
    """For public routes: None without a bearer token, else the reviewer it names (401 for a token refused)."""
    if not token:
        return None
    return get_current_reviewer(session, get_token_claims(key, session, token))


OptionalReviewer = Annotated[User | None, Depends(get_optional_reviewer)]


def require_admin(user: CurrentReviewer) -> User:
    """The current reviewer if an admin; 403 otherwise (promote, roll back, force a retrain)."""
    if not user.is_admin:
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="Only an admin can do this.")
    return user


CurrentAdmin = Annotated[User, Depends(require_admin)]
