"""Login tokens (JWT, HS256) and the signing secret. Framework-free."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt

from model.core.settings import Settings

ALGORITHM = "HS256"


class InvalidTokenError(Exception):
    """The token is missing, malformed, expired or signed with another key."""


MIN_KEY_LENGTH = 32


def secure_state_dir(home: Path) -> None:
    """The embedded state directory is the owner's alone: 0700, and its database files 0600."""
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    for name in ("sprout.db", "sprout.db-wal", "sprout.db-shm", "secret_key", "mlflow.db"):
        if (home / name).exists():
            os.chmod(home / name, 0o600)


def signing_key(settings: Settings) -> str:
    """SPROUT_SECRET_KEY, or (embedded mode) a random key generated once into ``home/secret_key``.

    The generated key (48 random bytes) is written atomically: a temporary file linked into place, so two
    processes starting at once agree on one key and never read a half-written one.
    """
    if settings.secret_key is not None:
        key = settings.secret_key.get_secret_value()
    else:
        path = Path(settings.home) / "secret_key"
        if not path.exists():
            secure_state_dir(path.parent)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret_key-")
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(secrets.token_urlsafe(48))
                    f.flush()
                    os.fsync(f.fileno())
                with contextlib.suppress(FileExistsError):  # another process won the race: use its key
                    os.link(tmp, path)
            finally:
                os.unlink(tmp)
        key = path.read_text().strip()
    if len(key) < MIN_KEY_LENGTH:
        raise ValueError(f"the token signing key must have at least {MIN_KEY_LENGTH} characters")
    return key


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
