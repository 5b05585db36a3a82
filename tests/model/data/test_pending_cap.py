"""The review-queue cap (SPROUT_MAX_PENDING_SAMPLES) holds under concurrent uploads: threads of one process
(SQLite and PostgreSQL), and two processes on one PostgreSQL database (two API replicas)."""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest

from db.models import SampleSource, SampleStatus
from db.queries import count_samples
from model.core.errors import QueueFullError
from model.core.settings import Settings
from model.data.samples import submit_sample
from model.runtime.services import Services
from tests.utils.images import random_image_bytes

CAP = 4


def upload_at_once(settings: Settings, seeds: list[int], cap: int) -> list[str]:
    """Each seed's image submitted from a thread of its own, all released together: ``created`` or ``full``."""
    svc = Services.from_settings(settings)
    images = [random_image_bytes("JPEG", seed=seed) for seed in seeds]
    start = threading.Barrier(len(seeds))

    def one(data: bytes) -> str:
        start.wait()
        with svc.session() as session:
            try:
                _, created = submit_sample(session, svc.store, data=data, source=SampleSource.UPLOAD, max_pending=cap)
            except QueueFullError:
                return "full"
        return "created" if created else "duplicate"

    try:
        with ThreadPoolExecutor(len(seeds)) as pool:
            return list(pool.map(one, images))
    finally:
        svc.close()


def pending(svc: Services) -> int:
    with svc.session() as session:
        return count_samples(session, status=SampleStatus.PENDING)


def test_threads_racing_for_the_last_places_never_overfill_the_queue(any_db: Services) -> None:
    answers = upload_at_once(any_db.settings, list(range(16)), CAP)
    assert answers.count("created") == CAP and answers.count("full") == 16 - CAP, answers
    assert pending(any_db) == CAP


@pytest.mark.server
def test_two_processes_on_one_database_never_overfill_the_queue(tmp_path: Path, fresh_pg_url: str) -> None:
    from tests.utils.services import migrated_services

    svc = migrated_services(Settings(_env_file=None, home=tmp_path / "home",  # type: ignore[call-arg]
                                     database_url=fresh_pg_url))
    try:
        with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
            answers = [a for part in pool.map(upload_at_once, [svc.settings] * 2, [list(range(0, 10)),
                                                                               list(range(10, 20))], [CAP] * 2)
                       for a in part]
        assert answers.count("created") == CAP, answers
        assert pending(svc) == CAP
    finally:
        svc.close()
