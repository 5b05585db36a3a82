"""model.review.queue: the default order (uncertainty) offers the images a model called unfamiliar first."""

from __future__ import annotations

from pathlib import Path

from db.models import SampleSource, SampleStatus
from model.core.settings import Settings
from model.data.samples import Prediction, add_sample
from model.review.queue import QueueOrder, review_queue
from tests.utils.images import random_image_bytes
from tests.utils.services import migrated_services


def test_unfamiliar_first_then_the_least_confident(tmp_path: Path) -> None:
    svc = migrated_services(Settings(home=tmp_path))
    predictions = {"sure": Prediction("a", 0.9, "1"), "unsure": Prediction("b", 0.4, "1"),
                   "foreign": Prediction("a", 0.99, "1", unfamiliar=True), "unpredicted": None,
                   "foreign unsure": Prediction("c", 0.5, "1", unfamiliar=True)}
    try:
        with svc.session() as session:
            ids = {name: add_sample(session, svc.store, data=random_image_bytes("PNG", seed=i),
                                    source=SampleSource.UPLOAD, prediction=prediction)[0].id
                   for i, (name, prediction) in enumerate(predictions.items())}
        page = review_queue(svc, status=SampleStatus.PENDING, order=QueueOrder.UNCERTAINTY, limit=10)
        rows, total = page.rows, page.total
    finally:
        svc.close()
    names = {i: name for name, i in ids.items()}
    assert total == 5
    assert [names[s.id] for s in rows] == ["foreign unsure", "foreign", "unpredicted", "unsure", "sure"]
    assert [s.predicted_unfamiliar for s in rows] == [True, True, None, False, False]
