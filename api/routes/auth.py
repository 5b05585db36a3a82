"""/auth: the OAuth2 password flow for reviewers, who the token names (``/me``) and logout (revocation)."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from api.deps import CurrentReviewer, SessionDep, SettingsDep, SigningKeyDep, ThrottleDep, TokenClaimsDep
from api.schemas import Me, Token
from api.throttle import login_attempt
from model.core.accounts import authenticate, revoke
from model.core.security import create_access_token

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/token", response_model=Token, responses={429: {"description": "Too many failed attempts"},
                                                       503: {"description": "The rate-limit store is unreachable"}})
def login_access_token(form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep,
                       settings: SettingsDep, throttle: ThrottleDep, key: SigningKeyDep, request: Request) -> Token:
    """Exchange a reviewer's user name and password for a bearer token. Failures are throttled per (name, address),
    per address and per name from all addresses (``SPROUT_LOGIN_FAILURES_PER_*``); a right password never counts."""
    succeeded = login_attempt(throttle, request, settings, form.username)
    user = authenticate(session, username=form.username, password=form.password)
    if user is None:
        raise HTTPException(status_code=status.HTTP_401_UNAUTHORIZED, detail="Incorrect user name or password.",
                            headers={"WWW-Authenticate": "Bearer"})
    succeeded()
    token = create_access_token(subject=user.username, key=key,
                                minutes=settings.access_token_minutes, generation=user.session_generation)
    return Token(access_token=token, expires_in=settings.access_token_minutes * 60, username=user.username,
                 is_admin=user.is_admin)


@router.get("/me", response_model=Me)
def who_am_i(user: CurrentReviewer, claims: TokenClaimsDep) -> Me:
    """The reviewer the bearer token names and its remaining lifetime (the UI restores a session with it)."""
    return Me(username=user.username, is_admin=user.is_admin, expires_in=claims.seconds_left())


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def log_out(session: SessionDep, _user: CurrentReviewer, claims: TokenClaimsDep) -> Response:
    """Revoke the bearer token: from now on the API refuses it, as if it had expired."""
    revoke(session, claims)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
