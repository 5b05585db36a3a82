"""Training and data metrics computed from the database (scraped through the API's /metrics)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from db import queries
from db.models import RunStatus
from model.runtime.services import Services


@dataclass(frozen=True)
class TrainingSnapshot:
    """Sample counts, run outcomes, accuracy per registered version, the champion's age."""

    samples: dict[str, int]
    approved_since_last_run: int
    runs: dict[str, int]
    last_gate_passed: bool | None
    accuracy_by_version: dict[str, float | None]
    last_promotion_age_seconds: float | None


def training_snapshot(svc: Services) -> TrainingSnapshot:
    """Read once per scrape."""
    with svc.session() as session:
        samples = {status.value: n for status, n in queries.count_samples_by_status(session).items()}
        runs = queries.list_runs(session, newest_first=False)
        new = queries.count_new_approved(session)
    outcomes = {"passed": 0, "refused": 0, "failed": 0}
    for run in runs:
        if run.status is RunStatus.FAILED:
            outcomes["failed"] += 1
        elif run.status is RunStatus.SUCCEEDED:
            outcomes["passed" if run.gate_passed else "refused"] += 1
    finished = [r for r in runs if r.status is RunStatus.SUCCEEDED]
    last_promotion = max((r.finished_at for r in finished if r.promoted and r.finished_at), default=None)
    if last_promotion is not None and last_promotion.tzinfo is None:
        last_promotion = last_promotion.replace(tzinfo=UTC)
    return TrainingSnapshot(
        samples=samples,
        approved_since_last_run=new,
        runs=outcomes,
        last_gate_passed=finished[-1].gate_passed if finished else None,
        accuracy_by_version={str(r.registered_version): (r.metrics or {}).get("accuracy") for r in finished
                             if r.registered_version},
        last_promotion_age_seconds=((datetime.now(UTC) - last_promotion).total_seconds()
                                    if last_promotion else None),
    )
