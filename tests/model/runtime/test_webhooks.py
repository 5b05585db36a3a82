"""Signed outbound webhooks (issue 25, point 5): a real HTTP receiver on 127.0.0.1 verifies every event with the
``standardwebhooks`` package, as a team's own tool would."""

from __future__ import annotations

import base64
import dataclasses
import logging
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError
from standardwebhooks import Webhook, WebhookVerificationError

from model.core.settings import Settings
from model.data.importer import import_directory
from model.learning.promotion import rollback, train
from model.runtime.webhooks import send_event
from tests.utils.datasets import colour_dataset
from tests.utils.live_api import free_port
from tests.utils.services import migrated_services
from tests.utils.webhook_receiver import SECRET, Receiver, webhook_receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as rec:
        yield rec


def counted(event: str, result: str) -> float:
    return REGISTRY.get_sample_value("sprout_webhook_deliveries_total", {"event": event, "result": result}) or 0.0


def hook_settings(url: str, **extra: object) -> Settings:
    return Settings(webhook_url=url, webhook_secret=SECRET, **extra)  # type: ignore[arg-type]


def test_an_event_arrives_signed_and_only_the_right_secret_and_body_verify(receiver: Receiver) -> None:
    before = counted("rollout.aborted", "delivered")
    delivery = send_event(hook_settings(receiver.url), "rollout.aborted",
                          {"rollout_id": 7, "reason": "challenger worse on 412 live predictions"})
    assert counted("rollout.aborted", "delivered") == before + 1
    assert delivery is not None and delivery.delivered and delivery.attempts == 1 and delivery.status_code == 200
    [(body, headers)] = receiver.received
    assert headers["webhook-id"] == delivery.event_id and headers["content-type"] == "application/json"
    assert headers["webhook-signature"].startswith("v1,")
    event = Webhook(SECRET).verify(body, headers)
    assert event["type"] == "rollout.aborted"
    assert event["data"] == {"rollout_id": 7, "reason": "challenger worse on 412 live predictions"}
    assert event["timestamp"].endswith("+00:00")
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body.replace(b"worse", b"better"), headers)  # tampered body
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()).verify(body, headers)  # wrong secret


def test_5xx_is_retried_under_the_same_webhook_id_and_each_attempt_verifies(receiver: Receiver) -> None:
    receiver.answers = [500, 503]
    delivery = send_event(hook_settings(receiver.url), "champion.promoted", {"version": "3"})
    assert delivery is not None and delivery.delivered and delivery.attempts == 3
    assert [h["webhook-id"] for _, h in receiver.received] == [delivery.event_id] * 3
    for body, headers in receiver.received:
        assert Webhook(SECRET).verify(body, headers)["data"] == {"version": "3"}


def test_429_is_retried_but_a_4xx_is_final_and_a_last_5xx_fails_without_raising(receiver: Receiver) -> None:
    receiver.answers = [429]
    assert send_event(hook_settings(receiver.url), "rollout.started", {}).attempts == 2  # type: ignore[union-attr]
    receiver.received.clear()
    receiver.answers = [410]
    gone = send_event(hook_settings(receiver.url), "rollout.started", {})
    assert gone is not None and not gone.delivered and gone.attempts == 1 and gone.status_code == 410
    assert gone.error == "HTTP 410" and len(receiver.received) == 1
    receiver.answers = [500, 500, 500]
    down = send_event(hook_settings(receiver.url), "rollout.started", {})
    assert down is not None and not down.delivered and down.attempts == 3 and down.status_code == 500


def test_a_receiver_that_is_down_fails_fast_without_raising_and_the_log_keeps_the_secrets(
        caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}/hooks/sprout-team-token"  # nothing listens there
    started, before = time.monotonic(), counted("champion.rolled_back", "failed")
    with caplog.at_level(logging.WARNING, logger="model.runtime.webhooks"):
        delivery = send_event(hook_settings(url), "champion.rolled_back", {"version": "1"})
    assert time.monotonic() - started < 5
    assert delivery is not None and not delivery.delivered and delivery.attempts == 3
    assert delivery.status_code is None and delivery.error == "cannot connect (ConnectError)"
    assert counted("champion.rolled_back", "failed") == before + 1  # sprout_webhook_deliveries_total on /metrics
    [record] = caplog.records
    assert "champion.rolled_back" in record.getMessage() and "after 3 attempt(s)" in record.getMessage()
    assert SECRET.removeprefix("whsec_") not in caplog.text and "sprout-team-token" not in caplog.text


def test_a_slow_receiver_is_cut_off_at_the_timeout(receiver: Receiver) -> None:
    receiver.delay = 2.0
    started = time.monotonic()
    delivery = send_event(hook_settings(receiver.url, webhook_timeout_seconds=0.3, webhook_attempts=1),
                          "rollout.promoted", {})
    assert time.monotonic() - started < 1.5
    assert delivery is not None and not delivery.delivered and delivery.error == "timed out (ReadTimeout)"


def test_no_url_no_webhooks() -> None:
    assert send_event(Settings(), "champion.promoted", {"version": "1"}) is None


@pytest.mark.parametrize(("env", "message"), [
    ({"SPROUT_WEBHOOK_URL": "http://127.0.0.1:9/hook"}, "SPROUT_WEBHOOK_SECRET is required with SPROUT_WEBHOOK_URL"),
    ({"SPROUT_WEBHOOK_URL": "file:///etc/passwd", "SPROUT_WEBHOOK_SECRET": SECRET}, "http:// or https:// URL"),
    ({"SPROUT_WEBHOOK_URL": "http://127.0.0.1:9/", "SPROUT_WEBHOOK_SECRET": "hunter2"}, "must start with 'whsec_'"),
    ({"SPROUT_WEBHOOK_URL": "http://127.0.0.1:9/", "SPROUT_WEBHOOK_SECRET": "whsec_c2hvcnQ="}, "24 to 64 random bytes"),
])
def test_webhook_settings_are_checked(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_promotions_and_a_rollback_on_a_real_home_each_deliver_one_signed_event(
        tmp_path: Path, receiver: Receiver) -> None:
    svc = migrated_services(hook_settings(receiver.url, home=tmp_path / "home"))
    with svc.session() as session:
        import_directory(session, svc.store, colour_dataset(tmp_path / "colours"))
    first, second = train(svc, force=True), train(svc, force=True)
    assert (first.version, second.version) == ("1", "2")
    assert rollback(svc, by="boss").champion == "1"
    assert rollback(svc, "2", by="boss").champion == "2"  # an admin promotes version 2 again
    events = [Webhook(SECRET).verify(body, headers) for body, headers in receiver.received]
    assert [(e["type"], e["data"]) for e in events] == [
        ("champion.promoted", {"model": "sprout-classifier", "version": "1", "previous": None,
                               "changed_by": f"run {first.run_id}", "kind": "run", "run_id": first.run_id}),
        ("champion.promoted", {"model": "sprout-classifier", "version": "2", "previous": "1",
                               "changed_by": f"run {second.run_id}", "kind": "run", "run_id": second.run_id}),
        ("champion.rolled_back", {"model": "sprout-classifier", "version": "1", "previous": "2",
                                  "changed_by": "boss", "kind": "rollback", "run_id": None}),
        ("champion.promoted", {"model": "sprout-classifier", "version": "2", "previous": "1", "changed_by": "boss",
                               "kind": "promoted", "run_id": None}),
    ]
    assert len({h["webhook-id"] for _, h in receiver.received}) == 4
    down = dataclasses.replace(svc, settings=hook_settings(f"http://127.0.0.1:{free_port()}/", home=svc.settings.home))
    assert rollback(down, by="boss").champion == "1"  # the receiver is down: the rollback stands all the same
    assert svc.registry.champion().version == "1" and len(receiver.received) == 4  # type: ignore[union-attr]

