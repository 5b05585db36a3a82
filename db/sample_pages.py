"""Pages of samples in the orders the database sorts by itself: by offset, or by keyset after a row's sort key.

Each order walks an index led by status (``ix_samples_status_*``), so the first page costs the same at 1k and
100k samples. An offset page still walks the index up to its offset (a page 90,000 rows deep reads 90,000
entries); a keyset page starts where the last one ended — the rest of the last row's tie group, then the groups
after it, each a range of the same index (``_ranges_after``) — whatever the depth.

Keys: ``novelty`` and ``contradiction`` are never NULL (-1: not scored / no contradiction, set at submission and
by migration 0015). ``confidence`` is NULL exactly in the even ``uncertainty_tier`` values (0: unfamiliar and no
confidence, 2: no prediction — ``uncertainty_tier_of``), so within one tier either every confidence is NULL and
ids decide, or none is: the keyset ranges need no NULL ordering, which SQLite and PostgreSQL disagree on.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from db.models import Sample, SampleStatus

SqlOrder = Literal["uncertainty", "novelty", "contradiction", "newest", "oldest"]
"""The review-queue orders SQL sorts by itself (``uncertainty``: least confident prediction first); the one
public enum of every order is ``QueueOrder``, next to the review queue in ``model``."""

SortKey = tuple[float | int | None, ...]
"""A row's place in an order: its sort columns' values, the id last."""


def list_samples(session: Session, *, status: SampleStatus | None, order: SqlOrder, limit: int, offset: int = 0,
                 after: SortKey | None = None) -> tuple[list[Sample], int | None]:
    """A page of samples and the total count of samples with that status: the ``limit`` rows after ``offset``
    rows, or after the row whose :func:`sort_key` is ``after`` (keyset). A keyset page counts nothing (None): the
    count grows with the list (90,000 approved rows: ~15 ms on PostgreSQL), and the first page gave it."""
    query = select(Sample.id)
    if status is not None:
        query = query.where(Sample.status == status)
    total = None if after is not None else int(session.scalar(select(func.count(Sample.id)).where(
        *([Sample.status == status] if status is not None else []))) or 0)
    # the sort sees ids and keys only (not every column of every row); then the page's rows, in that order
    if after is None:
        ids = list(session.scalars(query.order_by(*_order_by(order)).limit(limit).offset(offset)))
    else:
        ids = []
        for condition in _ranges_after(order, after):
            ids += session.scalars(query.where(*condition).order_by(*_order_by(order)).limit(limit - len(ids)))
            if len(ids) >= limit:
                break
    rows = {s.id: s for s in session.scalars(select(Sample).where(Sample.id.in_(ids)))} if ids else {}
    return [rows[i] for i in ids if i in rows], total


def sort_key(sample: Sample, order: SqlOrder) -> SortKey:
    """Where ``sample`` stands in ``order``: what the next keyset page starts after."""
    return tuple(getattr(sample, column.key) for column, _ in _columns(order))


def key_length(order: SqlOrder) -> int:
    """How many values a sort key of ``order`` has."""
    return len(_columns(order))


def _columns(order: SqlOrder) -> list[tuple[InstrumentedAttribute[Any], bool]]:
    """The order's sort columns, each with whether it ascends; the id last."""
    if order == "uncertainty":  # unfamiliar first (issue 23), then the least confident (uncertainty_tier_of)
        return [(Sample.uncertainty_tier, True), (Sample.confidence, True), (Sample.id, True)]
    if order == "novelty":  # farthest from the predicting model's training set first; unscored (-1) last
        return [(Sample.novelty, False), (Sample.id, False)]
    if order == "contradiction":  # the submitter's suggestion confidently contradicted first, then newest first
        return [(Sample.contradiction, False), (Sample.id, False)]
    return [(Sample.id, order != "newest")]


def _order_by(order: SqlOrder) -> list[ColumnElement[Any]]:
    return [column.asc() if ascending else column.desc() for column, ascending in _columns(order)]


def _ranges_after(order: SqlOrder, key: SortKey) -> list[list[ColumnElement[bool]]]:
    """The rows after ``key`` as index ranges, in the order's order: the rest of the key's tie group (the same
    values, ids after its id), then each shorter prefix's rest — ``k1 = a, k2 > b``, then ``k1 > a``. Each is
    equalities and one bound on the order's index, a range at any depth; one row-value comparison is bounded
    only on the leading key, so a deep page in a long tie (every unscored novelty is -1) would filter through
    the whole tie first. A NULL key (confidence, in the tiers without one) matches by ``IS NULL`` and has no rest
    of its own: its tier holds no confidences."""
    columns = _columns(order)
    ranges = []
    for depth in range(len(columns) - 1, -1, -1):
        column, ascending = columns[depth]
        if key[depth] is None:
            continue
        same = [c.is_(None) if v is None else c == v for (c, _), v in zip(columns[:depth], key, strict=False)]
        ranges.append([*same, column > key[depth] if ascending else column < key[depth]])
    return ranges
