"""The window of recent predictions (``recent_predictions``): what the drift monitor compares with training.
Bounded (``SPROUT_DRIFT_WINDOW``) and shared by every API replica's writer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from db.models import RecentPrediction


def recent_predictions(session: Session, *, model_version: str | None, limit: int) -> list[RecentPrediction]:
    """The newest ``limit`` predictions a version served (every version's when None), newest first."""
    query = select(RecentPrediction)
    if model_version is not None:
        query = query.where(RecentPrediction.model_version == model_version)
    return list(session.scalars(query.order_by(RecentPrediction.id.desc()).limit(limit)))


def prediction_window_mark(session: Session) -> tuple[int, int]:
    """``(count, sum of ids)`` of the recorded predictions: the window changed when it did. Not the newest id alone:
    writers (API replicas) take ids in one order and may commit in another, so rows can appear below it."""
    count, total = session.execute(select(func.count(RecentPrediction.id),
                                          func.coalesce(func.sum(RecentPrediction.id), 0))).one()
    return int(count), int(total)


def count_recent_predictions(session: Session) -> int:
    return int(session.scalar(select(func.count(RecentPrediction.id))) or 0)


def add_recent_predictions(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert served predictions (``created_at``, ``model_version``, ``backbone``, ``label``, ``confidence``,
    ``embedding``) in one executemany, without building ORM objects."""
    if rows:
        session.execute(insert(RecentPrediction), list(rows))


def prune_recent_predictions(session: Session, *, keep: int) -> int:
    """Delete all but the newest ``keep`` predictions, in the session's transaction; how many went."""
    cutoff = session.scalar(select(RecentPrediction.id).order_by(RecentPrediction.id.desc()).offset(keep - 1).limit(1))
    if cutoff is None:
        return 0
    result = session.execute(delete(RecentPrediction).where(RecentPrediction.id < cutoff)
                             .execution_options(synchronize_session=False))
    return int(result.rowcount)  # type: ignore[attr-defined]
