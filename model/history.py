"""Model history for the API's /models: registered versions joined with their training runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from db.models import TrainingRun
from model.registry import VersionInfo
from model.services import Services
from model.status import metrics_summary


def _version_row(v: VersionInfo, run: TrainingRun | None, champion: VersionInfo | None) -> dict[str, Any]:
    return {
        "version": v.version,
        "created_at": datetime.fromtimestamp(v.created_at_ms / 1000, UTC),
        "is_champion": bool(champion and champion.version == v.version),
        "run_id": run.id if run else None,
        "backbone": run.backbone if run else None,
        "metrics": metrics_summary(run.metrics) if run else None,
    }


def model_history(svc: Services, *, runs_limit: int = 50) -> dict[str, Any]:
    """Versions (newest first) with metrics and champion flag, and the latest training runs."""
    champion = svc.registry.champion()
    versions = svc.registry.versions()
    with svc.session() as session:
        runs = list(session.scalars(select(TrainingRun).order_by(TrainingRun.id.desc()).limit(runs_limit)))
        by_version = {r.registered_version: r for r in session.scalars(
            select(TrainingRun).where(TrainingRun.registered_version.is_not(None)))}
    return {
        "champion": champion.version if champion else None,
        "versions": [_version_row(v, by_version.get(v.version), champion) for v in reversed(versions)],
        "runs": runs,
    }
