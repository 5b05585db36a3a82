"""The rollout gauges of ``/metrics``: the open rollout's live evidence and the decisions taken so far, recomputed
in the background (every ``SPROUT_ROLLOUT_METRICS_SECONDS``, only when observations or reviews changed), never on
the request path nor at scrape time — the evidence reads every observation of the rollout."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

from db import rollouts
from db.models import RolloutMode, RolloutOutcome
from model.rollout.evidence import LiveEvidence
from model.rollout.judge import RULE, report
from model.runtime.services import Services

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RolloutSnapshot:
    """What the gauges show: the open rollout (None when there is none) with its evidence, and the ended
    rollouts counted by (outcome, decided by the rule)."""

    rollout_id: int | None = None
    challenger: str | None = None
    champion: str | None = None
    mode: RolloutMode | None = None
    started_at: datetime | None = None
    evidence: LiveEvidence | None = None
    decisions: dict[tuple[RolloutOutcome, bool], int] = field(default_factory=dict)

    @property
    def open(self) -> bool:
        return self.rollout_id is not None

    def age_seconds(self, now: datetime | None = None) -> float:
        """Seconds the open rollout has been running (0 when none is open)."""
        if self.started_at is None:
            return 0.0
        return max(0.0, ((now or datetime.now(UTC)) - self.started_at).total_seconds())


def snapshot(svc: Services, previous: RolloutSnapshot | None = None,
             key: tuple[object, ...] | None = None) -> tuple[RolloutSnapshot, tuple[object, ...] | None]:
    """A fresh snapshot and the key its evidence was computed for; ``previous``'s evidence is kept when the key
    (the open rollout, its newest observation, the latest review) equals ``key``."""
    with svc.session() as session:
        row = rollouts.open_rollout(session)
        decisions = rollouts.decision_counts(session, rule=RULE)
        current = (row.id, *rollouts.evidence_version(session, row.id)) if row is not None else None
    if row is None:
        return RolloutSnapshot(decisions=decisions), None
    if previous is not None and previous.evidence is not None and current == key:
        evidence = previous.evidence
    else:
        evidence = report(svc, row).evidence
    started = row.started_at if row.started_at.tzinfo else row.started_at.replace(tzinfo=UTC)
    return RolloutSnapshot(rollout_id=row.id, challenger=row.challenger_version, champion=row.champion_version,
                           mode=row.mode, started_at=started, evidence=evidence, decisions=decisions), current


class RolloutMonitor:
    """The latest ``RolloutSnapshot``, refreshed by a background thread (None until the first one)."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.latest: RolloutSnapshot | None = None
        self._key: tuple[object, ...] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> RolloutSnapshot:
        with self._lock:
            self.latest, self._key = snapshot(self.svc, self.latest, self._key)
            return self.latest

    def run_forever(self) -> None:
        while True:
            try:
                self.refresh()
            except Exception as exc:  # database down: keep the last snapshot, try again later
                log.warning("rollout metrics failed: %s: %s", type(exc).__name__, exc)
            if self._stop.wait(self.svc.settings.rollout_metrics_seconds):
                return

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run_forever, name="rollout-metrics", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
