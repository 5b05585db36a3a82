"""Signed outbound webhooks: a team hears of champion changes and rollouts in its own tools.

Each event is a JSON ``{"type", "timestamp", "data"}`` POSTed to ``SPROUT_WEBHOOK_URL`` and signed as the Standard
Webhooks specification says (headers ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``; the
``standardwebhooks`` package signs, a receiver verifies with the same package). A delivery never raises into the
action that emitted it: a failure is logged, counted (``sprout_webhook_deliveries_total``) and returned.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import httpx
from prometheus_client import Counter
from standardwebhooks import Webhook
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from db.models import ChampionChange, ChampionChangeKind
from model.core.settings import Settings
from model.core.webhook_settings import redact

log = logging.getLogger(__name__)

EventType = Literal["champion.promoted", "champion.rolled_back", "rollout.started", "rollout.promoted",
                    "rollout.aborted"]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)

DELIVERIES = Counter("sprout_webhook_deliveries_total", "Webhook events sent, by type and result "
                     "(delivered, failed)", ["event", "result"])


@dataclass(frozen=True)
class Delivery:
    """What became of one event: ``delivered`` on a 2xx; ``attempts`` made (all with the same ``event_id``, the
    ``webhook-id`` header); the last response's ``status_code`` and, on failure, a short ``error``."""

    event_id: str
    event_type: str
    delivered: bool
    attempts: int
    status_code: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _RetryableStatus(Exception):
    """A 5xx or 429 answer: the receiver may take the event on a later attempt."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


def _retryable(exc: BaseException) -> bool:
    """Connection errors, timeouts, 5xx and 429 are retried; any other answer (4xx, 3xx) is final."""
    return isinstance(exc, httpx.TransportError | _RetryableStatus)


def event_body(event_type: str, data: dict[str, Any], *, when: datetime | None = None) -> bytes:
    """The JSON body of an event, exactly the bytes that are signed and sent."""
    event = {"type": event_type, "timestamp": (when or datetime.now(UTC)).isoformat(), "data": data}
    return json.dumps(event, default=str, separators=(",", ":")).encode()


def send_event(settings: Settings, event_type: EventType, data: dict[str, Any]) -> Delivery | None:
    """POST a signed event to ``SPROUT_WEBHOOK_URL`` (None when webhooks are off); never raises.

    Up to ``SPROUT_WEBHOOK_ATTEMPTS`` attempts with exponential backoff, each re-signed with its own timestamp
    under the same ``webhook-id`` (receivers deduplicate on it); each bounded by ``SPROUT_WEBHOOK_TIMEOUT_SECONDS``.
    """
    if not settings.webhook_url or settings.webhook_secret is None:
        return None
    event_id = f"msg_{uuid.uuid4().hex}"
    status: int | None
    attempts, status = 0, None
    try:
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown webhook event type {event_type!r}")
        body = event_body(event_type, data)
        signer = Webhook(settings.webhook_secret.get_secret_value())
        retrying = Retrying(stop=stop_after_attempt(settings.webhook_attempts),
                            wait=wait_exponential(multiplier=0.25, max=4),
                            retry=retry_if_exception(_retryable), reraise=True)
        with httpx.Client(timeout=settings.webhook_timeout_seconds, follow_redirects=False) as client:
            for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    status = _post(client, settings.webhook_url, signer, event_id, body)
    except Exception as exc:  # noqa: BLE001 - the action that emitted the event stands whatever befalls it
        error, status = _describe(exc), _status(exc)
        log.warning("webhook %s (%s) to %s failed after %d attempt(s): %s", event_type, event_id,
                    redact(settings.webhook_url), attempts, error)
        DELIVERIES.labels(event_type, "failed").inc()
        return Delivery(event_id, event_type, delivered=False, attempts=attempts, status_code=status, error=error)
    log.info("webhook %s (%s) delivered to %s in %d attempt(s)", event_type, event_id,
             redact(settings.webhook_url), attempts)
    DELIVERIES.labels(event_type, "delivered").inc()
    return Delivery(event_id, event_type, delivered=True, attempts=attempts, status_code=status)


def _post(client: httpx.Client, url: str, signer: Webhook, event_id: str, body: bytes) -> int:
    """One signed attempt; the status code of a 2xx, else an exception (retryable or final)."""
    now = datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "user-agent": "sprout-webhooks",
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signer.sign(event_id, now, body),
    }
    response = client.post(url, content=body, headers=headers)
    if response.status_code == 429 or response.status_code >= 500:
        raise _RetryableStatus(response.status_code)
    if not response.is_success:
        raise httpx.HTTPStatusError(f"HTTP {response.status_code}", request=response.request, response=response)
    return response.status_code


def _status(exc: BaseException) -> int | None:
    """The status code of the answer that ended a failed delivery (None when there was no answer)."""
    if isinstance(exc, _RetryableStatus):
        return exc.status_code
    return exc.response.status_code if isinstance(exc, httpx.HTTPStatusError) else None


def _describe(exc: BaseException) -> str:
    """A short reason without the URL (whose path or query may be a credential) or any header."""
    if isinstance(exc, _RetryableStatus):
        return str(exc)
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    if isinstance(exc, httpx.TransportError):
        return f"cannot connect ({type(exc).__name__})"
    return f"{type(exc).__name__}: {exc}"


def champion_changed(settings: Settings, change: ChampionChange) -> Delivery | None:
    """Announce a recorded change of the champion (call after its commit): ``champion.rolled_back`` for a move
    back to an older version, else ``champion.promoted`` (by a run, an admin or a rollout)."""
    event: EventType = "champion.rolled_back" if change.kind is ChampionChangeKind.ROLLED_BACK else "champion.promoted"
    return send_event(settings, event, {"model": settings.model_name, "version": change.version,
                                        "previous": change.previous, "changed_by": change.changed_by,
                                        "kind": change.kind.value, "run_id": change.run_id})
