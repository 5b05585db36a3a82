"""Pages of samples in the orders the database sorts by itself: by offset, or by keyset after a row's sort key.

Each order walks an index led by status (``ix_samples_status_*``), so the first page costs the same at 1k and
100k samples. An offset page still walks the index up to its offset (a page 90,000 rows deep reads 90,000
entries); a keyset page starts where the last one ended: ``WHERE (key, id) > (last key, last id)`` is a range
of the same index, whatever the depth.

Keys: ``novelty`` and ``contradiction`` are never NULL (-1: not scored / no contradiction, set at submission and
by migration 0015). ``confidence`` is NULL exactly in the even ``uncertainty_tier`` values (0: unfamiliar and no
confidence, 2: no prediction — ``uncertainty_tier_of``), so within one tier either every confidence is NULL and
ids decide, or none is: the keyset predicate needs no NULL ordering, which SQLite and PostgreSQL disagree on.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, func, or_, select, tuple_
from sqlalchemy.orm import Session

from db.models import Sample, SampleStatus

SqlOrder = Literal["uncertainty", "novelty", "contradiction", "newest", "oldest"]
"""The review-queue orders SQL sorts by itself (``uncertainty``: least confident prediction first); the one
public enum of every order is ``QueueOrder``, next to the review queue in ``model``."""

SortKey = tuple[float | int | None, ...]
"""A row's place in an order: its sort columns' values, the id last."""


def list_samples(session: Session, *, status: SampleStatus | None, order: SqlOrder, limit: int, offset: int = 0,
                 after: SortKey | None = None) -> tuple[list[Sample], int]:
    """A page of samples and the total count of samples with that status: the ``limit`` rows after ``offset``
    rows, or after the row whose :func:`sort_key` is ``after`` (keyset)."""
    query = select(Sample.id)
    if status is not None:
        query = query.where(Sample.status == status)
    total = int(session.scalar(select(func.count(Sample.id)).where(
        *([Sample.status == status] if status is not None else []))) or 0)
    if after is not None:
        query = query.where(_after(order, after))
    # the sort sees ids and keys only (not every column of every row); then the page's rows, in that order
    ids = list(session.scalars(query.order_by(*_order_by(order)).limit(limit).offset(offset)))
    rows = {s.id: s for s in session.scalars(select(Sample).where(Sample.id.in_(ids)))} if ids else {}
    return [rows[i] for i in ids if i in rows], total


def sort_key(sample: Sample, order: SqlOrder) -> SortKey:
    """Where ``sample`` stands in ``order``: what the next keyset page starts after."""
    if order == "uncertainty":
        return (sample.uncertainty_tier, sample.confidence, sample.id)
    if order == "novelty":
        return (sample.novelty, sample.id)
    if order == "contradiction":
        return (sample.contradiction, sample.id)
    return (sample.id,)


def key_length(order: SqlOrder) -> int:
    """How many values a sort key of ``order`` has."""
    return {"uncertainty": 3, "novelty": 2, "contradiction": 2}.get(order, 1)


def _order_by(order: SqlOrder) -> list[ColumnElement[Any]]:
    if order == "uncertainty":  # unfamiliar first (issue 23), then the least confident (uncertainty_tier_of)
        return [Sample.uncertainty_tier.asc(), Sample.confidence.asc(), Sample.id.asc()]
    if order == "novelty":  # farthest from the predicting model's training set first; unscored (-1) last
        return [Sample.novelty.desc(), Sample.id.desc()]
    if order == "contradiction":  # the submitter's suggestion confidently contradicted first, then newest first
        return [Sample.contradiction.desc(), Sample.id.desc()]
    return [Sample.id.desc() if order == "newest" else Sample.id.asc()]


def _after(order: SqlOrder, key: SortKey) -> ColumnElement[bool]:
    """Rows after ``key`` in ``order``, as a range of the order's index (row-value comparisons)."""
    if order == "uncertainty":
        tier, confidence, last_id = key
        if confidence is None:  # a tier without confidences: the rest of it by id, then the later tiers
            return or_(and_(Sample.uncertainty_tier == tier, Sample.confidence.is_(None), Sample.id > last_id),
                       Sample.uncertainty_tier > tier)
        return tuple_(Sample.uncertainty_tier, Sample.confidence, Sample.id) > tuple_(tier, confidence, last_id)
    if order == "novelty":
        return tuple_(Sample.novelty, Sample.id) < tuple_(*key)
    if order == "contradiction":
        return tuple_(Sample.contradiction, Sample.id) < tuple_(*key)
    return Sample.id < key[0] if order == "newest" else Sample.id > key[0]
