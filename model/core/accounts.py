"""Reviewer accounts: argon2 password hashes (bcrypt hashes still verify), never plaintext."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db import queries
from db.models import RevokedToken, User
from model.core.errors import ConflictError, NotFoundError, SproutError
from model.core.security import TokenClaims

password_hash = PasswordHash((Argon2Hasher(), BcryptHasher()))
# Each argon2 hash takes 64 MiB: at most this many at once, however many logins arrive together.
HASHING = threading.BoundedSemaphore(2)
_DUMMY_HASH = password_hash.hash("timing-equaliser")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
MIN_PASSWORD_LENGTH = 12


def create_user(session: Session, *, username: str, password: str, is_admin: bool = False) -> User:
    """Add a reviewer account; the password is stored only as an argon2 hash."""
    if not _NAME_RE.match(username):
        raise SproutError("User names are 1-64 letters, digits or '_.@-'.")
    check_password(password)
    if queries.get_user(session, username=username) is not None:
        raise ConflictError(f"User {username!r} already exists.")
    user = User(username=username, password_hash=password_hash.hash(password), is_admin=is_admin)
    session.add(user)
    session.commit()
    return user


def check_password(password: str) -> None:
    """Refuse passwords shorter than MIN_PASSWORD_LENGTH characters."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise SproutError(f"Passwords need at least {MIN_PASSWORD_LENGTH} characters.")


def _existing(session: Session, username: str) -> User:
    user = queries.get_user(session, username=username)
    if user is None:
        raise NotFoundError(f"No user named {username!r}.")
    return user


def list_users(session: Session) -> list[User]:
    return queries.list_users(session)


def set_active(session: Session, *, username: str, active: bool) -> User:
    """Disable (or re-enable) an account. Disabling ends its sessions: the API checks the account on every request,
    and the tokens issued so far stay refused after a re-enabling (``is_current``)."""
    user = _existing(session, username)
    user.is_active = active
    if not active:
        _end_sessions(user)
    session.commit()
    return user


def set_password(session: Session, *, username: str, password: str) -> User:
    """A new password; the tokens issued so far are refused from now on (``is_current``)."""
    check_password(password)
    user = _existing(session, username)
    user.password_hash = password_hash.hash(password)
    _end_sessions(user)
    session.commit()
    return user


def _end_sessions(user: User) -> None:
    user.session_generation = (user.session_generation or 0) + 1


def is_current(user: User, claims: TokenClaims) -> bool:
    """Whether the token was issued since the user's last new password or disabling."""
    return claims.generation == user.session_generation


def set_admin(session: Session, *, username: str, admin: bool) -> User:
    """Grant (or take away) the admin role: promote, roll back, force a retrain."""
    user = _existing(session, username)
    user.is_admin = admin
    session.commit()
    return user


def authenticate(session: Session, *, username: str, password: str) -> User | None:
    """The active user with this name and password, or None (same work either way)."""
    user = queries.get_user(session, username=username)
    if user is None:
        with HASHING:
            password_hash.verify(password, _DUMMY_HASH)
        return None
    with HASHING:
        valid, new_hash = password_hash.verify_and_update(password, user.password_hash)
    if not valid or not user.is_active:
        return None
    if new_hash:
        user.password_hash = new_hash
        session.commit()
    return user


def revoke(session: Session, claims: TokenClaims) -> None:
    """End a token before its expiry (a logout); idempotent. Revocations of expired tokens are pruned."""
    queries.prune_revoked_tokens(session, before=datetime.now(UTC))
    if not queries.is_token_revoked(session, jti=claims.jti):
        session.add(RevokedToken(jti=claims.jti, expires_at=claims.expires_at))
    try:
        session.commit()
    except IntegrityError:  # a concurrent logout of the same token won: it is revoked all the same
        session.rollback()


def is_revoked(session: Session, claims: TokenClaims) -> bool:
    return queries.is_token_revoked(session, jti=claims.jti)
