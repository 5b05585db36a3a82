"""Paging the review queue by cursor (keyset) on SQLite and PostgreSQL: every order, ties, NULL confidences, and
rows arriving between two pages."""

from __future__ import annotations

import base64
import json

import pytest
from sqlalchemy import update

from db.models import Sample, SampleSource, SampleStatus
from model.core.errors import InvalidCursorError
from model.data.samples import Prediction, add_sample
from model.review.queue import QueueOrder, review_queue
from model.runtime.services import Services
from tests.utils.images import random_image_bytes

LABELS = ["alpha", "beta", "gamma"]


def fill(svc: Services, count: int, *, start: int = 0) -> list[int]:
    """``count`` samples whose sort keys tie often: three confidences, no prediction every fifth, unfamiliar every
    seventh, suggestions that the prediction contradicts, three novelty values; two in three pending."""
    ids = []
    with svc.session() as session:
        for i in range(start, start + count):
            prediction = None if i % 5 == 0 else Prediction(LABELS[i % 3], (0.4, 0.6, 0.8)[i % 3 if i % 2 else 0],
                                                             "1", unfamiliar=i % 7 == 0)
            sample, _ = add_sample(session, svc.store, data=random_image_bytes("PNG", seed=1000 + i),
                                   source=SampleSource.UPLOAD, prediction=prediction,
                                   suggested_label=LABELS[(i + 1) % 3] if i % 4 == 0 else None)
            ids.append(sample.id)
        for i, sample_id in enumerate(ids):
            session.execute(update(Sample).where(Sample.id == sample_id).values(
                novelty=(-1.0, 0.25, 0.5)[i % 3],
                status=SampleStatus.PENDING if i % 3 else SampleStatus.APPROVED,
                label=LABELS[i % 3] if i % 3 == 0 else None))
        session.commit()
    return ids


def walk(svc: Services, *, status: SampleStatus, order: QueueOrder, limit: int) -> list[int]:
    """Every id of the queue, page after page by each page's ``next_cursor``."""
    seen, cursor = [], None
    while True:
        page = review_queue(svc, status=status, order=order, limit=limit, cursor=cursor)
        assert (page.total is None) == (cursor is not None)
        seen += [s.id for s in page.rows]
        if page.next_cursor is None:
            return seen
        assert len(page.rows) == limit
        cursor = page.next_cursor


@pytest.mark.parametrize("status", [SampleStatus.PENDING, SampleStatus.APPROVED])
def test_cursor_pages_list_each_order_exactly_as_one_long_page(any_db: Services, status: SampleStatus) -> None:
    fill(any_db, 48)
    for order in QueueOrder:
        whole = review_queue(any_db, status=status, order=order, limit=200)
        expected = [s.id for s in whole.rows]
        assert whole.next_cursor is None and len(expected) == whole.total
        for limit in (1, 5, 7):
            assert walk(any_db, status=status, order=order, limit=limit) == expected, (order, limit)


def test_a_cursor_page_neither_repeats_nor_skips_when_samples_arrive_between_pages(any_db: Services) -> None:
    fill(any_db, 30)
    first = review_queue(any_db, status=SampleStatus.PENDING, order=QueueOrder.NEWEST, limit=5)
    arrived = fill(any_db, 6, start=100)  # new pending samples sort first in "newest"
    assert first.next_cursor is not None
    after = review_queue(any_db, status=SampleStatus.PENDING, order=QueueOrder.NEWEST, limit=5,
                         cursor=first.next_cursor)
    by_offset = review_queue(any_db, status=SampleStatus.PENDING, order=QueueOrder.NEWEST, limit=5, offset=5)
    first_ids = [s.id for s in first.rows]
    assert [s.id for s in after.rows] == sorted((i for i in range(1, 31) if i % 3 != 1 and i < min(first_ids)),
                                                reverse=True)[:5]
    assert not {s.id for s in after.rows} & set(first_ids + arrived)
    assert {s.id for s in by_offset.rows} & set(first_ids)  # an offset page shifts: it shows page 1's rows again


def test_a_cursor_of_another_order_or_status_or_not_a_cursor_is_refused(any_db: Services) -> None:
    fill(any_db, 12)
    novelty = review_queue(any_db, status=SampleStatus.PENDING, order=QueueOrder.NOVELTY, limit=2).next_cursor
    diverse = review_queue(any_db, status=SampleStatus.PENDING, order=QueueOrder.DIVERSE, limit=2).next_cursor
    assert novelty and diverse
    refused = [{"order": QueueOrder.OLDEST, "cursor": novelty}, {"order": QueueOrder.NOVELTY, "cursor": diverse},
               {"order": QueueOrder.NOVELTY, "cursor": novelty, "status": SampleStatus.APPROVED},
               {"order": QueueOrder.NOVELTY, "cursor": novelty, "offset": 2},
               {"order": QueueOrder.NOVELTY, "cursor": "%%"},
               {"order": QueueOrder.NOVELTY, "cursor": "eyJvIjoibm92ZWx0eSIsInMiOiJwZW5kaW5nIiwiayI6WzEsbnVsbF19"}]
    def forged(body: dict[str, object]) -> str:  # numbers no column holds, which a database would refuse (a 500)
        return base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")

    refused += [{"order": QueueOrder.NEWEST, "cursor": forged({"o": "newest", "s": "pending", "k": [2**64]})},
                {"order": QueueOrder.NEWEST, "cursor": forged({"o": "newest", "s": "pending", "k": [10**309]})},
                {"order": QueueOrder.DIVERSE, "cursor": forged({"o": "diverse", "s": "pending", "n": 10**30})}]
    for kwargs in refused:
        with pytest.raises(InvalidCursorError):
            review_queue(any_db, **{"status": SampleStatus.PENDING, "limit": 2, **kwargs})  # type: ignore[arg-type]
