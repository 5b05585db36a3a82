"""Model history for the API's /models: registered versions joined with their training runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from db import queries
from db.models import ChampionChange, TrainingRun
from model.runtime.services import Services
from model.serving.guards import AbstainRule
from model.serving.registry import VersionInfo


@dataclass(frozen=True)
class VersionRow:
    """A registered version with the run that produced it: its test metrics (``Metrics.to_dict()``: accuracy, macro
    F1, log loss, n, per-class precision/recall/F1/support and the confusion matrix) and its gate evidence."""

    version: str
    created_at: datetime
    is_champion: bool
    run_id: int | None
    backbone: str | None
    metrics: dict[str, Any] | None
    evidence: dict[str, Any] | None = None
    coverage: float | None = None  # share of the out-of-fold predictions not abstained (None: trained before)
    labels: list[str] | None = None  # the labels it knows (the columns of its probabilities)
    abstain_precision: float | None = None  # the precision target its abstain thresholds were fitted to


@dataclass(frozen=True)
class ModelHistory:
    """Versions (newest first), the latest training runs (newest first) and the champion's version."""

    champion: str | None
    versions: list[VersionRow]
    runs: list[TrainingRun]
    changes: list[ChampionChange] = field(default_factory=list)  # who changed the champion, newest first


def _version_row(v: VersionInfo, run: TrainingRun | None, champion: VersionInfo | None) -> VersionRow:
    abstain = abstain_rule(run)
    return VersionRow(
        version=v.version, created_at=datetime.fromtimestamp(v.created_at_ms / 1000, UTC),
        is_champion=bool(champion and champion.version == v.version), run_id=run.id if run else None,
        backbone=run.backbone if run else None, metrics=run.metrics if run else None,
        evidence=run.evidence if run else None, coverage=abstain.coverage if abstain else None,
        abstain_precision=abstain.target if abstain else None, labels=list(run.labels) if run else None,
    )


def abstain_rule(run: TrainingRun | None) -> AbstainRule | None:
    """The abstain thresholds a run fitted (None for runs from before them)."""
    stored = ((run.params or {}).get("guards") or {}).get("abstain") if run is not None else None
    return AbstainRule.from_dict(stored) if stored else None


def model_history(svc: Services, *, runs_limit: int = 50) -> ModelHistory:
    """Versions with metrics and champion flag, and the latest training runs."""
    champion = svc.registry.champion()
    versions = svc.registry.versions()
    with svc.session() as session:
        runs = queries.list_runs(session, limit=runs_limit)
        by_version = queries.runs_by_version(session)
        changes = queries.champion_changes(session)
    return ModelHistory(
        champion=champion.version if champion else None,
        versions=[_version_row(v, by_version.get(v.version), champion) for v in reversed(versions)],
        runs=runs, changes=changes,
    )
