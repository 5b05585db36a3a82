"""Training and data metrics computed from the database (scraped through the API's /metrics)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from db.models import RunStatus, TrainingRun
from model.pipeline import new_approved_count
from model.services import Services
from model.status import sample_counts


def training_snapshot(svc: Services) -> dict[str, Any]:
    """Sample counts, run outcomes, accuracy per registered version, the champion's age."""
    with svc.session() as session:
        samples = sample_counts(session)
        runs = session.scalars(select(TrainingRun).order_by(TrainingRun.id)).all()
        new = new_approved_count(session)
    outcomes = {"passed": 0, "refused": 0, "failed": 0}
    for run in runs:
        if run.status is RunStatus.FAILED:
            outcomes["failed"] += 1
        elif run.status is RunStatus.SUCCEEDED:
            outcomes["passed" if run.gate_passed else "refused"] += 1
    finished = [r for r in runs if r.status is RunStatus.SUCCEEDED]
    promoted = [r for r in finished if r.promoted and r.finished_at]
    last_promotion = max((r.finished_at for r in promoted if r.finished_at), default=None)
    if last_promotion is not None and last_promotion.tzinfo is None:
        last_promotion = last_promotion.replace(tzinfo=UTC)
    return {
        "samples": samples,
        "approved_since_last_run": new,
        "runs": outcomes,
        "last_gate_passed": (finished[-1].gate_passed if finished else None),
        "accuracy_by_version": {r.registered_version: (r.metrics or {}).get("accuracy") for r in finished
                                if r.registered_version},
        "last_promotion_age_seconds": ((datetime.now(UTC) - last_promotion).total_seconds()
                                       if last_promotion else None),
    }
