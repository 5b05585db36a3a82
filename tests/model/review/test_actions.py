"""Two reviewers, one sample: real threads on PostgreSQL and SQLite, each sample ends with one decision."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
from PIL import Image

from db.models import Review, Sample, SampleSource, SampleStatus
from model.core.errors import ConflictError
from model.core.settings import Settings
from model.data.samples import add_sample
from model.review.actions import review_sample
from model.runtime.services import Services
from tests.utils.services import migrated_services

N_SAMPLES = 10


def jpeg(i: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (48, 32), (i * 20 % 256, 90, 200 - i)).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.server), "sqlite"])
def svc(request: pytest.FixtureRequest, tmp_path: Path) -> Services:
    url = request.getfixturevalue("fresh_pg_url") if request.param == "postgresql" else None
    return migrated_services(Settings(home=tmp_path, database_url=url))


def test_twenty_concurrent_reviewers_on_ten_samples_each_sample_gets_one_decision(svc: Services) -> None:
    with svc.session() as session:
        ids = [add_sample(session, svc.store, data=jpeg(i), source=SampleSource.UPLOAD,
                          suggested_label="grass")[0].id for i in range(N_SAMPLES)]
    barrier = threading.Barrier(2 * N_SAMPLES)
    outcomes: dict[tuple[int, str], str] = {}

    def reviewer(sample_id: int, action: str) -> None:
        barrier.wait()
        with svc.session() as session:
            try:
                review_sample(session, svc.store, sample_id=sample_id, action=action, reviewer=f"r-{action}",
                              label="grass" if action == "approve" else None)
                outcomes[(sample_id, action)] = "ok"
            except ConflictError as exc:
                outcomes[(sample_id, action)] = f"409: {exc}"

    threads = [threading.Thread(target=reviewer, args=(sid, action))
               for sid in ids for action in ("approve", "reject")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    keys = set(svc.store.list())
    with svc.session() as session:
        for sid in ids:
            won = [a for a in ("approve", "reject") if outcomes[(sid, a)] == "ok"]
            assert len(won) == 1, {a: outcomes[(sid, a)] for a in ("approve", "reject")}
            lost = "reject" if won == ["approve"] else "approve"
            assert "already reviewed" in outcomes[(sid, lost)]
            sample = session.get(Sample, sid)
            reviews = session.query(Review).filter(Review.sample_id == sid).all()
            assert len(reviews) == 1 and reviews[0].reviewer == f"r-{won[0]}"
            if won == ["approve"]:
                assert sample.status is SampleStatus.APPROVED and sample.label == "grass" and sample.approved_at
            else:
                assert sample.status is SampleStatus.REJECTED and sample.label is None and sample.approved_at is None
            assert sample.reviewed_by == f"r-{won[0]}"
            assert sample.object_key in keys  # the row's object exists; the other copy is gone
            assert [k for k in keys if sample.sha256 in k] == [sample.object_key]
