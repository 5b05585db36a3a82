"""What ``sprout status`` reports: sample counts, retrain progress and the champion."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import Sample, SampleStatus, TrainingRun
from model.pipeline import last_run, new_approved_count
from model.services import Services


def sample_counts(session: Session) -> dict[str, int]:
    """Samples per review status (pending, approved, rejected), zero where there are none."""
    found = {str(status): n for status, n in session.execute(
        select(Sample.status, func.count()).group_by(Sample.status)).tuples()}
    return {status.value: found.get(status.value, 0) for status in SampleStatus}


def collect_status(svc: Services) -> dict[str, Any]:
    """Counts by status and label, approved since the last run, champion version and metrics."""
    with svc.session() as session:
        by_status = sample_counts(session)
        label_counts = select(Sample.label, func.count()).where(Sample.label.is_not(None)).group_by(Sample.label)
        by_label = dict(session.execute(label_counts).tuples().all())
        new = new_approved_count(session)
        last = last_run(session)
        champion = svc.registry.champion()
        champ_run = session.scalar(select(TrainingRun).where(
            TrainingRun.registered_version == champion.version)) if champion else None
        return {
            "samples": {"total": sum(by_status.values()), **by_status},
            "approved_by_label": dict(sorted(by_label.items())),
            "approved_since_last_run": new,
            "min_new_samples": svc.settings.min_new_samples,
            "retrain_due": new >= svc.settings.min_new_samples,
            "last_run": {"id": last.id, "finished_at": last.finished_at.isoformat() if last.finished_at else None,
                         "gate_passed": last.gate_passed, "gate_reason": last.gate_reason,
                         "version": last.registered_version} if last else None,
            "champion": {"version": champion.version, "run_id": champ_run.id if champ_run else None,
                         "backbone": champ_run.backbone if champ_run else None,
                         "metrics": metrics_summary(champ_run.metrics) if champ_run else None} if champion else None,
        }


def metrics_summary(metrics: dict[str, Any] | None) -> dict[str, Any] | None:
    if not metrics:
        return None
    return {k: metrics.get(k) for k in ("accuracy", "macro_f1", "log_loss", "n")}


def review_stats(svc: Services) -> dict[str, Any]:
    """What the review page shows: queue size, progress toward the retrain threshold, per-label counts."""
    status = collect_status(svc)
    return {
        **{k: status["samples"][k] for k in ("pending", "approved", "rejected")},
        "approved_since_last_run": status["approved_since_last_run"],
        "min_new_samples": status["min_new_samples"],
        "labels": status["approved_by_label"],
        "champion_version": status["champion"]["version"] if status["champion"] else None,
    }
