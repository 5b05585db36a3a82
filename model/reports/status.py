"""What ``sprout status`` and the Review page report: sample counts, retrain progress and the champion."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from db import queries
from db.models import Split, TrainingRun
from model.data.class_balance import ClassBalance, class_balance
from model.learning.gate import left_out_labels
from model.runtime.services import Services

SUMMARY_METRICS = ("accuracy", "macro_f1", "log_loss", "n")


def metrics_summary(metrics: dict[str, Any] | None) -> dict[str, Any] | None:
    """The headline numbers of a run's test metrics."""
    if not metrics:
        return None
    return {k: metrics.get(k) for k in SUMMARY_METRICS}


@dataclass(frozen=True)
class LastRun:
    id: int
    finished_at: datetime | None
    gate_passed: bool | None
    gate_reason: str | None
    version: str | None


@dataclass(frozen=True)
class ChampionSummary:
    version: str
    run_id: int | None
    backbone: str | None
    metrics: dict[str, Any] | None


@dataclass(frozen=True)
class Status:
    """Counts by status and label, approvals since the last run, the last run and the champion."""

    samples: dict[str, int]
    approved_by_label: dict[str, int]
    approved_since_last_run: int
    min_new_samples: int
    retrain_due: bool
    last_run: LastRun | None
    champion: ChampionSummary | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ReviewStats:
    """What the review page shows: queue size, progress toward the retrain threshold, per-label counts, warnings
    about labels a run would leave out, and the class balance (shares, under-represented labels)."""

    pending: int
    approved: int
    rejected: int
    approved_since_last_run: int
    min_new_samples: int
    labels: dict[str, int]
    champion_version: str | None
    warnings: list[str]
    class_balance: ClassBalance


def _last_run(run: TrainingRun | None) -> LastRun | None:
    if run is None:
        return None
    return LastRun(id=run.id, finished_at=run.finished_at, gate_passed=run.gate_passed,
                   gate_reason=run.gate_reason, version=run.registered_version)


def collect_status(svc: Services) -> Status:
    """The whole status, read in one session (and one registry call)."""
    return _collect(svc)[0]


def _collect(svc: Services) -> tuple[Status, dict[str, Counter[Split]]]:
    """The status and the approved samples per label and split, from one count of each (the per-label counts are
    the per-split ones summed: one pass over the approved samples, not two)."""
    champion = svc.registry.champion()
    with svc.session() as session:
        by_status = {status.value: n for status, n in queries.count_samples_by_status(session).items()}
        per_split = _approved_per_split(session)
        new = queries.count_new_approved(session)
        champ_run = queries.get_run_by_version(session, version=champion.version) if champion else None
        status = Status(
            samples={"total": sum(by_status.values()), **by_status},
            approved_by_label={label: sum(splits.values()) for label, splits in sorted(per_split.items())},
            approved_since_last_run=new,
            min_new_samples=svc.settings.min_new_samples,
            retrain_due=new >= svc.settings.min_new_samples,
            last_run=_last_run(queries.last_succeeded_run(session)),
            champion=ChampionSummary(
                version=champion.version, run_id=champ_run.id if champ_run else None,
                backbone=champ_run.backbone if champ_run else None,
                metrics=metrics_summary(champ_run.metrics) if champ_run else None) if champion else None,
        )
        return status, per_split


def _approved_per_split(session: Session) -> dict[str, Counter[Split]]:
    """``{label: {split: approved samples}}``."""
    per_split: dict[str, Counter[Split]] = {}
    for (label, split), n in queries.count_approved_by_label_and_split(session).items():
        per_split.setdefault(label, Counter())[split] += n
    return per_split


def review_stats(svc: Services) -> ReviewStats:
    """The review page's numbers (a subset of the status), the labels the next run would leave out and the class
    balance of the approved samples."""
    status, per_split = _collect(svc)
    return ReviewStats(
        pending=status.samples["pending"], approved=status.samples["approved"],
        rejected=status.samples["rejected"], approved_since_last_run=status.approved_since_last_run,
        min_new_samples=status.min_new_samples, labels=status.approved_by_label,
        champion_version=status.champion.version if status.champion else None,
        warnings=left_out_labels(per_split)[1],  # labels the next run would leave out (no training samples)
        class_balance=class_balance(per_split, min_ratio=svc.settings.imbalance_min_ratio),
    )
