"""Checks of the outbound-webhook settings (``SPROUT_WEBHOOK_URL`` and ``SPROUT_WEBHOOK_SECRET``)."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import urlsplit

from pydantic import SecretStr

SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES, MAX_SECRET_BYTES = 24, 64  # the Standard Webhooks specification's range


def secret_bytes(secret: str) -> bytes:
    """The key of a ``whsec_<base64>`` secret; ValueError when it is not base64 of 24 to 64 bytes."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"SPROUT_WEBHOOK_SECRET must start with {SECRET_PREFIX!r} (whsec_ + base64 of random bytes)")
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        raise ValueError("SPROUT_WEBHOOK_SECRET: the part after 'whsec_' is not base64") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(f"SPROUT_WEBHOOK_SECRET must encode {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} random bytes "
                         f"(it encodes {len(key)}); e.g. python -c \"import base64, secrets; "
                         f"print('whsec_' + base64.b64encode(secrets.token_bytes(32)).decode())\"")
    return key


def check_webhook_settings(url: str | None, secret: SecretStr | None) -> None:
    """ValueError unless webhooks are off (no URL) or have an http(s) URL and a well-formed secret."""
    if not url:
        return
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in 0-65535
    except ValueError:
        raise ValueError(f"SPROUT_WEBHOOK_URL has an invalid port: {redact(url)!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"SPROUT_WEBHOOK_URL must be an http:// or https:// URL with a host, not {redact(url)!r}")
    if secret is None or not secret.get_secret_value():
        raise ValueError("SPROUT_WEBHOOK_SECRET is required with SPROUT_WEBHOOK_URL (whsec_ + base64 of 24 to 64 "
                         "random bytes): the receiver checks each event's signature with it")
    secret_bytes(secret.get_secret_value())


def redact(url: str) -> str:
    """The URL's scheme, host and port only: a webhook URL's path or query may itself be a credential."""
    parts = urlsplit(url)
    if not parts.hostname:
        return parts.scheme + ":…" if parts.scheme else "…"
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ":?"
    return f"{parts.scheme}://{host}{port}/…"
