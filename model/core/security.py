"""Login tokens (JWT, HS256) and the signing secret. Framework-free."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from dataclasses import dataclass
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
    """SPROUT_SECRET_KEY, or (embedded mode, never in production) a random key generated once into
    ``home/secret_key``.

    The generated key (48 random bytes) is written atomically: a temporary file linked into place, so two
    processes starting at once agree on one key and never read a half-written one.
    """
    if settings.secret_key is not None:
        key = settings.secret_key.get_secret_value()
    elif settings.env == "production":
        raise ValueError(f"SPROUT_SECRET_KEY must be set to a random value of at least {MIN_KEY_LENGTH} characters")
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


@dataclass(frozen=True)
class TokenClaims:
    """What a valid token says: who (``subject``), which token (``jti``, what a logout revokes), until when, and
    of which of the user's session generations (``generation``: a new password or a disabling moves it on)."""

    subject: str
    jti: str
    expires_at: datetime
    generation: int = 0

    def seconds_left(self, now: datetime | None = None) -> int:
        return max(0, int((self.expires_at - (now or datetime.now(UTC))).total_seconds()))


def create_access_token(*, subject: str, key: str, minutes: int, now: datetime | None = None,
                        generation: int = 0) -> str:
    """A signed token for ``subject`` valid ``minutes``, with a random id (``jti``) so that it can be revoked, and
    the user's session ``generation`` (claim ``gen``)."""
    now = now or datetime.now(UTC)
    claims = {"sub": subject, "iat": now, "exp": now + timedelta(minutes=minutes), "jti": secrets.token_urlsafe(16),
              "gen": generation}
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def read_access_token(token: str, *, key: str) -> TokenClaims:
    """The claims of a token signed with ``key`` and not expired, or InvalidTokenError (revocation is the
    caller's check: see ``model.core.accounts.is_revoked``)."""
    try:
        payload = jwt.decode(token, key, algorithms=[ALGORITHM], options={"require": ["sub", "exp", "jti"]})
    except jwt.PyJWTError as exc:
        raise InvalidTokenError(str(exc)) from exc
    generation = payload.get("gen", 0)  # tokens from before generations existed: the first one
    if not isinstance(generation, int) or isinstance(generation, bool):
        raise InvalidTokenError("the token's session generation is not a number")
    return TokenClaims(subject=str(payload["sub"]), jti=str(payload["jti"]),
                       expires_at=datetime.fromtimestamp(int(payload["exp"]), UTC), generation=generation)


def decode_access_token(token: str, *, key: str) -> str:
    """The token's subject (user name), or InvalidTokenError."""
    return read_access_token(token, key=key).subject
