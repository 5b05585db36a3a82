"""The rollout gauges of /metrics: the monitor's snapshot of the open rollout's live evidence (6 labels, reviewed
pairs joined through the reviewers' labels) and the decisions counted from the database, rendered by the API's
collector (no NaN, nothing about a rollout when none is open)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from api.metrics import RolloutCollector
from db import rollouts
from db.models import RolloutMode, RolloutOutcome, SampleSource, utcnow
from model.core.settings import Settings
from model.data.samples import add_sample
from model.rollout.monitor import RolloutMonitor
from model.runtime.services import Services
from tests.model.rollout.observations import SCENES
from tests.utils.images import random_image_bytes
from tests.utils.services import migrated_services


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Services]:
    services = migrated_services(Settings(_env_file=None, home=tmp_path / "home"))  # type: ignore[call-arg]
    yield services
    services.close()


def scrape(monitor: RolloutMonitor) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample the collector exports: (name, sorted labels) -> value."""
    registry = CollectorRegistry()
    collector = RolloutCollector()
    collector.monitor = monitor
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def start(svc: Services, challenger: str = "2") -> int:
    with svc.session() as session:
        row = rollouts.start_rollout(session, challenger_version=challenger, champion_version="1",
                                     mode=RolloutMode.SHADOW, started_by="test")
        session.commit()
        return row.id


def observation(rollout_id: int, data: bytes, champion: str, challenger: str | None, *, champion_ms: float = 20.0,
                challenger_ms: float = 30.0) -> dict[str, object]:
    return {"rollout_id": rollout_id, "sha256": hashlib.sha256(data).hexdigest(), "answered_by": "champion",
            "champion_label": champion, "champion_confidence": 0.8, "champion_latency_ms": champion_ms,
            "challenger_label": challenger, "challenger_confidence": 0.7 if challenger else None,
            "challenger_latency_ms": challenger_ms if challenger else None,
            "challenger_error": None if challenger else "RuntimeError: boom", "created_at": utcnow()}


def test_no_rollout_exports_closed_and_zero_decisions_only(svc: Services) -> None:
    monitor = RolloutMonitor(svc)
    assert scrape(monitor) == {}  # nothing before the first refresh (never computed at scrape time)
    monitor.refresh()
    samples = scrape(monitor)
    assert samples[("sprout_rollout_open", ())] == 0 and samples[("sprout_rollout_age_seconds", ())] == 0
    assert {k for k in samples if k[0] == "sprout_rollout_decisions"} == {
        ("sprout_rollout_decisions", (("decided_by_rule", rule), ("outcome", outcome)))
        for rule in ("true", "false") for outcome in ("promoted", "aborted")}
    assert all(v == 0 for k, v in samples.items() if k[0] == "sprout_rollout_decisions")
    assert not any(name.startswith(("sprout_rollout_live", "sprout_rollout_info", "sprout_rollout_agreement"))
                   for name, _ in samples)


def test_open_rollout_live_evidence_on_six_labels(svc: Services) -> None:
    rid = start(svc)
    images = [random_image_bytes(seed=i) for i in range(12)]
    truth = [SCENES[i % len(SCENES)] for i in range(12)]
    wrong = [SCENES[(i + 1) % len(SCENES)] for i in range(12)]
    rows = []
    for i, data in enumerate(images):
        # the champion right on all 12; the challenger right on the first 9, wrong on 3 more, failing on 1
        rows.append(observation(rid, data, truth[i], truth[i] if i < 9 else wrong[i]))
    rows.append(observation(rid, random_image_bytes(seed=99), "forest", None))
    with svc.session() as session:
        rollouts.add_observations(session, rows)
        for i in range(8):  # a reviewer labelled 8 of them (5 with both right, 3 where the challenger erred)
            add_sample(session, svc.store, data=images[i + 4], source=SampleSource.UPLOAD, label=truth[i + 4])
        session.commit()
    monitor = RolloutMonitor(svc)
    monitor.refresh()
    samples = scrape(monitor)
    assert samples[("sprout_rollout_open", ())] == 1 and samples[("sprout_rollout_age_seconds", ())] >= 0
    assert samples[("sprout_rollout_info", (("challenger", "2"), ("champion", "1"), ("mode", "shadow")))] == 1
    assert samples[("sprout_rollout_reviewed_pairs", ())] == 8
    assert samples[("sprout_rollout_observations", ())] == 13
    assert samples[("sprout_rollout_live_accuracy", (("model", "champion"),))] == 1.0
    assert samples[("sprout_rollout_live_accuracy", (("model", "challenger"),))] == pytest.approx(5 / 8)
    assert samples[("sprout_rollout_agreement", ())] == pytest.approx(9 / 12)
    assert samples[("sprout_rollout_challenger_error_rate", ())] == pytest.approx(1 / 13)
    assert samples[("sprout_rollout_p99_seconds", (("model", "champion"),))] == pytest.approx(0.020)
    assert samples[("sprout_rollout_p99_seconds", (("model", "challenger"),))] == pytest.approx(0.030)

    # a new observation changes the evidence at the next refresh; an unchanged database reuses it
    before = monitor.latest
    assert monitor.refresh().evidence is before.evidence  # type: ignore[union-attr]
    with svc.session() as session:
        rollouts.add_observations(session, [observation(rid, random_image_bytes(seed=100), "sea", "sea")])
        session.commit()
    assert scrape(monitor)[("sprout_rollout_observations", ())] == 13  # not at scrape time
    monitor.refresh()
    assert scrape(monitor)[("sprout_rollout_observations", ())] == 14


def test_decisions_are_counted_by_outcome_and_who_decided(svc: Services) -> None:
    for outcome, by in ((RolloutOutcome.ABORTED, "rule"), (RolloutOutcome.ABORTED, "rule"),
                        (RolloutOutcome.ABORTED, "alice"), (RolloutOutcome.PROMOTED, "rule")):
        rid = start(svc)
        with svc.session() as session:
            assert rollouts.end_rollout(session, rid, outcome=outcome, reason="test", decided_by=by)
            session.commit()
    start(svc, challenger="7")
    monitor = RolloutMonitor(svc)
    monitor.refresh()
    samples = scrape(monitor)

    def decided(outcome: str, rule: str) -> float:
        return samples[("sprout_rollout_decisions", (("decided_by_rule", rule), ("outcome", outcome)))]

    assert (decided("aborted", "true"), decided("aborted", "false"), decided("promoted", "true"),
            decided("promoted", "false")) == (2, 1, 1, 0)
    # an open rollout without observations: no accuracy, agreement, error rate nor latency (never NaN)
    assert samples[("sprout_rollout_open", ())] == 1 and samples[("sprout_rollout_reviewed_pairs", ())] == 0
    assert not any(name in {"sprout_rollout_live_accuracy", "sprout_rollout_agreement", "sprout_rollout_p99_seconds",
                            "sprout_rollout_challenger_error_rate"} for name, _ in samples)
