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

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from db.models import Sample, SampleStatus

SqlOrder = Literal["uncertainty", "novelty", "contradiction", "newest", "oldest"]
"""The review-queue orders SQL sorts by itself (``uncertainty``: least confident prediction first); the one
public enum of every order is ``QueueOrder``, next to the review queue in ``model``."""

SortKey = tuple[float | int | None, ...]
"""A row's place in an order: its sort columns' values, the id last."""


@dataclass(frozen=True)
class SamplePage:
    """A page of samples, the count of samples with its status (None on a keyset page), and the last row's sort
    key when more rows follow (None on the last page)."""

    rows: list[Sample]
    total: int | None
    next_key: SortKey | None


def list_samples(session: Session, *, status: SampleStatus | None, order: SqlOrder, limit: int, offset: int = 0,
                 after: SortKey | None = None) -> SamplePage:
    """The ``limit`` samples after ``offset`` rows, or after the row whose sort key is ``after`` (keyset). A keyset
    page counts nothing: the count grows with the list (90,000 approved rows: ~15 ms on PostgreSQL), and the first
    page gave it. Whether more follow is read with the keys (one row more), so a row deleted or reviewed between
    the two reads neither ends the list early nor shows on a page of another status."""
    condition = [Sample.status == status] if status is not None else []
    total = None if after is not None else int(session.scalar(select(func.count(Sample.id)).where(*condition)) or 0)
    # the sort sees the keys only (the order's index), not every column of every row; then the page's rows
    query = select(*(column for column, _ in _columns(order))).where(*condition).order_by(*_order_by(order))
    if after is None:
        keys = [tuple(row) for row in session.execute(query.limit(limit + 1).offset(offset))]
    else:
        keys = []
        for bound in _ranges_after(order, after):
            keys += [tuple(row) for row in session.execute(query.where(*bound).limit(limit + 1 - len(keys)))]
            if len(keys) > limit:
                break
    more, keys = len(keys) > limit, keys[:limit]
    ids = [int(key[-1]) for key in keys]
    rows = {s.id: s for s in session.scalars(select(Sample).where(Sample.id.in_(ids), *condition))} if ids else {}
    return SamplePage([rows[i] for i in ids if i in rows], total, tuple(keys[-1]) if more else None)


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
