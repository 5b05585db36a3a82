"""The review queue's orders: where a reviewer's minute changes the model most.

- ``uncertainty`` (the default): the images the model called unfamiliar first (they look like nothing it was
  trained on: a new label, or something that does not belong), then the least confident prediction first (active
  learning).
- ``novelty``: farthest from every image the predicting model trained on first (lowest best cosine to its
  training embeddings, kept with the sample at submission: ``model.data.novelty``); samples without one come last
  (newest first).
- ``diverse``: uncertainty with k-center diversity: the most uncertain first, then each next one the most
  uncertain among those far from all already picked, so ten look-alike uncertain images do not fill a page. The
  k-center runs over a bounded pool — the ``DIVERSE_POOL`` × (offset + page) most uncertain — so its cost follows
  the page, not the queue; it ranks the first ``DIVERSE_PLACES`` (500) places.
- ``suspect``: pending samples whose submitter's suggestion the model confidently contradicts, most confident
  first (then newest first); approved samples in the order of ``sprout label-issues`` (Cleanlab), the rest after
  (the first ``MAX_RANKED``, 5,000, places).

``uncertainty``, ``novelty``, ``oldest``, ``newest`` and ``suspect`` on pending samples are sorted by the database
along an index led by status (their keys are kept with each sample at submission: ``uncertainty_tier`` and
``confidence``, ``novelty``, ``contradiction``), so a first page costs the same with 100 or 100,000 samples. A page
deep in a long list costs its offset (the index is walked up to it) unless it is asked for by ``cursor`` — each
page's ``next_cursor``, a keyset page that starts where the last one ended (``db.sample_pages``).
- ``oldest`` / ``newest``: by arrival.

``suggestion_conflicts`` flags a pending sample whose submitter's suggestion contradicts the label its
near-duplicate group was approved with (an uploader's suggestion is a hint, never the label a plain approve takes).
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session

from db import queries, sample_pages
from db.models import Sample, SampleStatus
from db.sample_pages import SqlOrder
from model.core.errors import InvalidCursorError
from model.data.near_duplicates import normalized
from model.review.label_issues import find_label_issues
from model.review.page_cursor import PageCursor, decode_cursor
from model.runtime.services import Services

DIVERSE_POOL = 10  # k-center picks from the DIVERSE_POOL × page most uncertain samples
MAX_RANKED = 5000  # embedding-based orders rank at most this many samples (the rest follow by id)
DIVERSE_PLACES = 500  # the diverse order's k-center picks at most this many (its pool: ten times as many)


class QueueOrder(enum.StrEnum):
    """How the review queue is sorted."""

    UNCERTAINTY = "uncertainty"
    NOVELTY = "novelty"
    DIVERSE = "diverse"
    SUSPECT = "suspect"
    OLDEST = "oldest"
    NEWEST = "newest"


SQL_ORDERS: dict[QueueOrder, SqlOrder] = {
    QueueOrder.UNCERTAINTY: "uncertainty", QueueOrder.NOVELTY: "novelty", QueueOrder.OLDEST: "oldest",
    QueueOrder.NEWEST: "newest"}
"""The orders the database sorts by itself; the others are ranked here."""


def _sql_order(order: QueueOrder, status: SampleStatus | None) -> SqlOrder | None:
    if order is QueueOrder.SUSPECT and status is SampleStatus.PENDING:  # no Cleanlab ranking of pending samples
        return "contradiction"
    return SQL_ORDERS.get(order)


@dataclass(frozen=True)
class QueuePage:
    """One page of the queue, the count of samples with its status, and the cursor of the next page (None at
    the end)."""

    rows: list[Sample]
    total: int | None  # None on a page asked for by cursor: the first page counted
    next_cursor: str | None


def review_queue(svc: Services, *, status: SampleStatus | None, order: QueueOrder, limit: int, offset: int = 0,
                 cursor: str | None = None) -> QueuePage:
    """A page of samples in ``order``: after ``offset`` rows, or where ``cursor`` (a page's ``next_cursor``)
    says — for the orders the database sorts, a keyset page that costs the same at any depth."""
    sql_order = _sql_order(order, status)
    status_name = status.value if status is not None else None
    after: PageCursor | None = None
    if cursor is not None:
        if offset:
            raise InvalidCursorError("give either offset or cursor, not both")
        after = decode_cursor(cursor, order=order.value, status=status_name, sql_order=sql_order)
        offset = after.position or 0
    with svc.session() as session:
        if sql_order is not None:
            found = sample_pages.list_samples(session, status=status, order=sql_order, limit=limit, offset=offset,
                                              after=after.key if after else None)
            session.expunge_all()
            return QueuePage(found.rows, found.total, PageCursor(order.value, status_name, key=found.next_key).encode()
                             if found.next_key is not None else None)
        places = DIVERSE_PLACES if order is QueueOrder.DIVERSE else MAX_RANKED
        if offset >= places:  # ranked in Python: the first places only (each further page costs more)
            return QueuePage([], None if cursor else queries.count_samples(session, status=status), None)
        limit = min(limit, places - offset)
        if order is QueueOrder.DIVERSE:
            pool = sample_pages.list_samples(session, status=status, order="uncertainty",
                                             limit=DIVERSE_POOL * (offset + limit))
            ranked, total = by_diversity(session, pool.rows, page=limit + offset), pool.total
        else:
            ranked, total = _suspects_first(svc, session, status=status, need=offset + limit)
        session.expunge_all()
    page = ranked[offset : offset + limit]
    more = offset + limit < min(places, len(ranked) if status is None and order is QueueOrder.SUSPECT else total or 0)
    return QueuePage(page, None if cursor else total,
                     PageCursor(order.value, status_name, position=offset + limit).encode() if more else None)


def _champion_backbone(session: Session) -> str | None:
    """The backbone of the promoted model's run (None before the first promotion)."""
    run = queries.last_promoted_run(session)
    return run.backbone if run is not None else None


def _embeddings(session: Session, backbone: str, rows: list[Sample]) -> dict[int, np.ndarray]:
    cached = queries.cached_embeddings(session, backbone=backbone, hashes=[s.sha256 for s in rows])
    return {s.id: np.frombuffer(cached[s.sha256], dtype=np.float32) for s in rows if s.sha256 in cached}


def _uncertainty(sample: Sample) -> float:
    return 1.0 - sample.confidence if sample.confidence is not None else 1.0


def by_diversity(session: Session, rows: list[Sample], *, page: int) -> list[Sample]:
    """Greedy k-center over the most uncertain: each pick maximises uncertainty × distance to the picked."""
    uncertain = sorted(rows, key=lambda s: (-_uncertainty(s), s.id))
    pool, rest = uncertain[: DIVERSE_POOL * max(page, 1)], uncertain[DIVERSE_POOL * max(page, 1):]
    backbone = _champion_backbone(session)
    vectors = _embeddings(session, backbone, pool) if backbone else {}
    with_vec = [s for s in pool if s.id in vectors]
    if len(with_vec) < 2:
        return uncertain
    picked = k_center_order(np.stack([vectors[s.id] for s in with_vec]),
                            np.array([_uncertainty(s) for s in with_vec]), picks=page)
    ordered = [with_vec[i] for i in picked]
    return ordered + [s for s in pool if s.id not in vectors] + rest


def k_center_order(vectors: np.ndarray, uncertainty: np.ndarray, *, picks: int | None = None) -> list[int]:
    """Row order of greedy weighted k-center: start at the most uncertain, then repeatedly the row maximising
    uncertainty × cosine distance to the nearest row already picked. With ``picks``, only that many are chosen this
    way (a page needs no more); the other rows follow, most uncertain first."""
    x = normalized(vectors)
    weight = np.asarray(uncertainty, dtype=np.float64) + 1e-6
    wanted = len(x) if picks is None else min(len(x), max(1, picks))
    picked = [int(weight.argmax())]
    distance = 1.0 - x @ x[picked[0]]
    while len(picked) < wanted:
        score = weight * np.maximum(distance, 0.0)
        score[picked] = -1.0
        picked.append(int(score.argmax()))
        distance = np.minimum(distance, 1.0 - x @ x[picked[-1]])
    chosen = set(picked)
    rest = sorted((i for i in range(len(x)) if i not in chosen), key=lambda i: (-weight[i], i))
    return picked + rest


def _suspects_first(svc: Services, session: Session, *, status: SampleStatus | None,
                    need: int) -> tuple[list[Sample], int]:
    """The first ``need`` of the ``suspect`` order over approved, rejected or every sample, and the count: the last
    run's Cleanlab ranking first (only its first ``need`` valid rows are read), then the rest (pending: a confident
    contradiction first), by id. Over every status the rest is the first ``MAX_RANKED`` by id."""
    issues = find_label_issues(svc, limit=need) if status in (None, SampleStatus.APPROVED) else []
    found = queries.samples_by_id(session, ids=[i.id for i in issues])
    head = [found[i.id] for i in issues if i.id in found]
    rest = [s for s in queries.samples_with_status(session, status=status,
                                                   limit=MAX_RANKED if status is None else need + len(head))
            if s.id not in found]
    return head + by_contradiction(rest), queries.count_samples(session, status=status)


def by_contradiction(rows: list[Sample]) -> list[Sample]:
    """Pending samples whose submitter's suggestion the model contradicts first, most confident first; then by id."""

    def contradiction(s: Sample) -> float:
        if s.status is SampleStatus.PENDING and s.suggested_label and s.predicted_label \
                and s.suggested_label != s.predicted_label:
            return s.confidence or 0.0
        return -1.0

    return sorted(rows, key=lambda s: (-contradiction(s), s.id))


def suggestion_conflicts(session: Session, samples: list[Sample]) -> dict[int, str]:
    """``{sample id: approved label}`` for the pending samples whose suggested label no approved member of their
    near-duplicate group carries: the group's most common approved label, which the suggestion contradicts."""
    suggested = {s.id: (s.suggested_label, s.duplicate_group) for s in samples
                 if s.status is SampleStatus.PENDING and s.suggested_label and s.duplicate_group is not None}
    approved = queries.approved_labels_by_group(session, groups=[group for _, group in suggested.values()])
    return {sid: Counter(labels).most_common(1)[0][0] for sid, (label, group) in suggested.items()
            if (labels := approved.get(group)) and label not in labels}
