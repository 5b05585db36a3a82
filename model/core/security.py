"""Login tokens (JWT, HS256) and the signing secret. Framework-free."""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt

from model.core.settings import Settings

ALGORITHM = "HS256"


class InvalidTokenError(Exception):
    """The token is missing, malformed, expired or signed with another key."""


def signing_key(settings: Settings) -> str:
    """SPROUT_SECRET_KEY, or (embedded mode) a random key generated once into ``home/secret_key``."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    path = Path(settings.home) / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def create_access_token(*, subject: str, key: str, minutes: int, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return jwt.encode({"sub": subject, "iat": now, "exp": now + timedelta(minutes=minutes)}, key, algorithm=ALGORITHM)


def decode_access_token(token: str, *, key: str) -> str:
    """The token's subject (user name), or InvalidTokenError."""
    try:
        payload = jwt.decode(token, key, algorithms=[ALGORITHM], options={"require": ["sub", "exp"]})
    except jwt.PyJWTError as exc:
        raise InvalidTokenError(str(exc)) from exc
    return str(payload["sub"])
