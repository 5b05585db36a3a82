"""A rollout from start to decision: read its live observations with the reviewers' labels, judge them by the
rule, act (promote or abort, once), and say so — in MLflow tags on both versions and in signed webhooks.

``sprout rollout judge`` (the ``sprout_rollout`` DAG, every few minutes) calls ``judge``; ``sprout rollout
start|promote|abort`` and the admin routes call ``begin`` and ``override`` (audited under the person's name).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from db import rollouts
from db.models import Rollout, RolloutMode, RolloutOutcome
from model.core.errors import ConflictError
from model.rollout.evidence import LiveEvidence, Observation, describe, live_evidence
from model.rollout.rule import RolloutDecision, RolloutRule, decide
from model.runtime import rollout_control, webhooks
from model.runtime.services import Services

log = logging.getLogger(__name__)
RULE = "rule"  # decided_by of the automatic decisions


@dataclass(frozen=True)
class RolloutReport:
    """A rollout, its live evidence in numbers and words, and what the rule says (or said) of it."""

    rollout: Rollout
    evidence: LiveEvidence
    decision: RolloutDecision | None  # what the rule would do now (an open rollout); None once decided
    alpha: float = 0.05  # the rule's significance level, for the words

    def to_dict(self) -> dict[str, Any]:
        r = self.rollout
        return {"id": r.id, "challenger": r.challenger_version, "champion": r.champion_version,
                "mode": r.mode.value, "started_by": r.started_by, "run_id": r.run_id,
                "started_at": r.started_at.isoformat(), "open": bool(r.open),
                "ended_at": r.ended_at.isoformat() if r.ended_at else None,
                "outcome": r.outcome.value if r.outcome else None, "reason": r.reason, "decided_by": r.decided_by,
                "evidence": self.evidence.to_dict(), "summary": describe(self.evidence, self.alpha),
                "decision": self.decision.to_dict() if self.decision else None}


def observations(svc: Services, rollout_id: int) -> list[Observation]:
    """The rollout's observations, the latest of each image with the reviewer's label when it was approved: a
    reviewed image is one paired comparison however often it was sent (McNemar counts images, not requests), while
    every request counts for agreement, errors and latency. A pair the champion could not score — a canary whose
    champion failed — is no evidence about the challenger."""
    with svc.session() as session:
        rows = [(o, label) for o, label in rollouts.labelled_observations(session, rollout_id)
                if o.champion_label is not None]
    latest = {o.sha256: o.id for o, _ in rows}  # oldest first: the last one of each image wins
    return [Observation(champion_label=str(o.champion_label), champion_confidence=float(o.champion_confidence or 0.0),
                        champion_latency_ms=float(o.champion_latency_ms or 0.0), challenger_label=o.challenger_label,
                        challenger_confidence=o.challenger_confidence,
                        challenger_latency_ms=o.challenger_latency_ms, challenger_error=o.challenger_error,
                        reviewed_label=label if latest[o.sha256] == o.id else None, at=_aware(o.created_at),
                        image=o.sha256)
            for o, label in rows]


def _aware(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back: they were written in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def report(svc: Services, rollout: Rollout, *, now: datetime | None = None) -> RolloutReport:
    evidence, rule = live_evidence(observations(svc, rollout.id)), RolloutRule.from_settings(svc.settings)
    decision = None
    if rollout.open:
        decision = decide(evidence, rule, started_at=_aware(rollout.started_at), now=now or datetime.now(UTC),
                          gate_cleared=rollout.run_id is not None)  # a run's candidate; not an admin's pick
    return RolloutReport(rollout, evidence, decision, rule.alpha)


def status(svc: Services) -> list[RolloutReport]:
    """The latest rollouts (the open one first, if any), each with its evidence."""
    with svc.session() as session:
        recent = rollouts.recent_rollouts(session, limit=5)
    return [report(svc, r) for r in recent]


def begin(svc: Services, version: str, *, mode: RolloutMode, by: str) -> RolloutReport:
    """Start a rollout of ``version`` (an admin's or the command line's), announced by webhook."""
    row = rollout_control.start(svc, version, mode=mode, started_by=by)
    webhooks.send_event(svc.settings, "rollout.started", rollout_control.event(row))
    return report(svc, row)


def judge(svc: Services, *, now: datetime | None = None) -> RolloutReport | None:
    """Judge the open rollout by the rule and act: promote, abort, or wait. None when no rollout is open."""
    with svc.session() as session:
        row = rollouts.open_rollout(session)
    if row is None:
        return None
    current = report(svc, row, now=now)
    assert current.decision is not None
    champion = svc.registry.champion()
    serving = champion.version if champion else None
    if serving == row.challenger_version:  # a promotion moved the alias and died before recording it: finish it
        return _end(svc, RolloutOutcome.PROMOTED, reason="completing a promotion interrupted before it was recorded "
                    f"(the champion alias already pointed at v{row.challenger_version})", by=RULE,
                    evidence=current.evidence, rollout_id=row.id)
    if serving != row.champion_version:  # a rollback or a direct promotion meanwhile: the evidence is not about it
        return _end(svc, RolloutOutcome.ABORTED, reason=f"Abort: the champion changed during the rollout "
                    f"(v{row.champion_version} then, v{serving} now), so the live evidence compared the challenger "
                    "with another model; the champion stays.", by=RULE, evidence=current.evidence,
                    rollout_id=row.id)
    if current.decision.action == "wait":
        return current
    outcome = RolloutOutcome.PROMOTED if current.decision.action == "promote" else RolloutOutcome.ABORTED
    return _end(svc, outcome, reason=current.decision.reason, by=RULE, evidence=current.evidence,
                rollout_id=row.id)


def override(svc: Services, outcome: RolloutOutcome, *, by: str, reason: str | None = None,
             rollout_id: int | None = None) -> RolloutReport:
    """A person promotes or aborts the open rollout — ``rollout_id``, when given, must be it (the one the person
    looked at; else ConflictError) — whatever the rule says (audited under ``by``)."""
    with svc.session() as session:
        row = rollouts.open_rollout(session)
    if rollout_id is not None and (row is None or row.id != rollout_id):
        raise ConflictError(f"Rollout {rollout_id} was decided meanwhile" + (
            f"; rollout {row.id} (v{row.challenger_version}) is the open one now: nothing was done." if row else
            ": nothing was done."))
    evidence = live_evidence(observations(svc, row.id)) if row is not None else live_evidence([])
    said = reason or f"{outcome.value} by {by}, overriding the rule"
    return _end(svc, outcome, reason=said, by=by, evidence=evidence, rollout_id=row.id if row else None)


def _end(svc: Services, outcome: RolloutOutcome, *, reason: str, by: str, evidence: LiveEvidence,
         rollout_id: int | None) -> RolloutReport:
    ended = rollout_control.end(svc, outcome, reason=reason, decided_by=by, rollout_id=rollout_id)
    row = ended.rollout
    _tag(svc, row, evidence)
    event: webhooks.EventType = "rollout.promoted" if outcome is RolloutOutcome.PROMOTED else "rollout.aborted"
    webhooks.send_event(svc.settings, event, rollout_control.event(row) | {"evidence": evidence.to_dict()})
    return RolloutReport(row, evidence, None, RolloutRule.from_settings(svc.settings).alpha)


def _tag(svc: Services, row: Rollout, evidence: LiveEvidence) -> None:
    """The decision and its live comparison as MLflow tags on both versions (best effort: the decision stands)."""
    tags = {"sprout.rollout.id": str(row.id), "sprout.rollout.outcome": row.outcome.value if row.outcome else "",
            "sprout.rollout.reason": row.reason or "", "sprout.rollout.decided_by": row.decided_by or "",
            "sprout.rollout.summary": describe(evidence, RolloutRule.from_settings(svc.settings).alpha)}
    for version, role in ((row.challenger_version, "challenger"), (row.champion_version, "champion")):
        if version is None:
            continue
        try:
            svc.registry.tag_version(version, tags | {"sprout.rollout.role": role})
        except Exception as exc:  # the registry down: the decision is recorded in the database already
            log.warning("rollout %s: could not tag version %s in MLflow (%s)", row.id, version, exc)
