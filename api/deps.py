"""Every FastAPI dependency: settings, services, sessions, storage, the predictor and the current reviewer.

The ones that never block are ``async``: FastAPI then resolves them in the event loop, not on the shared
worker threads, so ``/predict`` never waits for a thread that an upload holds while storage hangs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from db import queries
from db.models import User
from model.core.accounts import is_current, is_revoked
from model.core.security import InvalidTokenError, TokenClaims, read_access_token
from model.core.settings import Settings
from model.data.storage import ObjectStore
from model.reports.drift import DriftMonitor
from model.runtime.services import Services
from model.runtime.traffic import PredictionRecorder
from model.serving.predictor import Predictor
from model.serving.watcher import ChampionWatcher

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)


async def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


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


async def get_watcher(request: Request) -> ChampionWatcher:
    return request.app.state.watcher  # type: ignore[no-any-return]


WatcherDep = Annotated[ChampionWatcher, Depends(get_watcher)]


async def get_predictor(watcher: WatcherDep) -> Predictor:
    """The champion predictor (NoChampionError → 503 when none is promoted)."""
    return watcher.predictor


PredictorDep = Annotated[Predictor, Depends(get_predictor)]


async def get_recorder(request: Request) -> PredictionRecorder:
    """The buffered writer of the window of recent predictions (never blocks)."""
    return request.app.state.recorder  # type: ignore[no-any-return]


RecorderDep = Annotated[PredictionRecorder, Depends(get_recorder)]


async def get_drift_monitor(request: Request) -> DriftMonitor:
    return request.app.state.drift  # type: ignore[no-any-return]


DriftMonitorDep = Annotated[DriftMonitor, Depends(get_drift_monitor)]
TokenDep = Annotated[str | None, Depends(oauth2_scheme)]

UNAUTHORIZED = HTTPException(
    status_code=status.HTTP_401_UNAUTHORIZED,
    detail="Could not validate credentials.",
    headers={"WWW-Authenticate": "Bearer"},
)


def get_token_claims(request: Request, session: SessionDep, token: TokenDep) -> TokenClaims:
    """The claims of the bearer token; 401 for a missing, expired, forged or revoked (logged out) token."""
    if not token:
        raise UNAUTHORIZED
    try:
        claims = read_access_token(token, key=request.app.state.signing_key)
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


def get_optional_reviewer(request: Request, session: SessionDep, token: TokenDep) -> User | None:
    """For public routes: None without a bearer token, else the reviewer it names (401 for a token refused)."""
    if not token:
        return None
    return get_current_reviewer(session, get_token_claims(request, session, token))


OptionalReviewer = Annotated[User | None, Depends(get_optional_reviewer)]


def require_admin(user: CurrentReviewer) -> User:
    """The current reviewer if an admin; 403 otherwise (promote, roll back, force a retrain)."""
    if not user.is_admin:
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="Only an admin can do this.")
    return user


CurrentAdmin = Annotated[User, Depends(require_admin)]
