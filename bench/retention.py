"""Benchmark: `sprout gc` (model/data/retention.py) at N samples, on SQLite or a throwaway PostgreSQL.

The database is filled directly (no images): N samples of three labels, a fifth of them rejected 200 days ago, three
old training runs over all of them (one registered; two that registered nothing, whose 2N lineage rows expire, and
with them the rejected samples), N predictions (all but the drift window expire), N/10 embeddings of images no
sample has. It prints the time of a report, of `--apply` per rule and in all, and of a second run (which finds
nothing). Object deletes are not measured: the rejected samples' images are absent (on S3 each is one request).

    python bench/retention.py [--samples 100000] [--postgres]
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import insert

from db.models import (
    Embedding,
    RecentPrediction,
    Review,
    ReviewAction,
    RunStatus,
    Sample,
    SampleSource,
    SampleStatus,
    Split,
    TrainingRun,
    TrainingRunSample,
)
from model.core.settings import Settings
from model.data.retention import RetentionPolicy, collect
from model.runtime.services import Services
from tests.utils.services import migrated_services

LABELS = ("bird", "cat", "dog")


@contextlib.contextmanager
def database(postgres: bool) -> Iterator[str | None]:
    """A throwaway PostgreSQL database's URL, or None (SQLite under a temporary home)."""
    if not postgres:
        yield None
        return
    from tests.servers import create_database, postgres_server

    with postgres_server() as admin:
        yield create_database(admin, "retention_bench")


def sample_row(i: int, old: datetime) -> dict[str, object]:
    """Sample ``i``: every fifth rejected, the others approved under one of three labels."""
    rejected = i % 5 == 1
    return {"sha256": f"{i:064x}", "object_key": f"rejected/{i:064x}.png" if rejected else f"labeled/cat/{i:064x}.png",
            "content_type": "image/png", "size_bytes": 1000, "source": SampleSource.UPLOAD, "split": Split.TRAIN,
            "status": SampleStatus.REJECTED if rejected else SampleStatus.APPROVED,
            "label": None if rejected else LABELS[i % 3], "created_at": old, "updated_at": old}


def fill(svc: Services, n: int, old: datetime) -> None:
    """The rows described above, in bulk inserts."""
    vector = bytes(16)
    with svc.session() as session:
        session.execute(insert(Sample), [sample_row(i, old) for i in range(1, n + 1)])
        session.execute(insert(Review), [
            {"sample_id": i, "reviewer": "ann", "action": ReviewAction.REJECT, "created_at": old}
            for i in range(1, n + 1, 5)])
        session.execute(insert(Embedding), [
            {"sha256": f"{i:064x}", "backbone": "b", "dim": 4, "vector": vector, "created_at": old}
            for i in range(1, n + n // 10 + 1)])
        session.execute(insert(RecentPrediction), [
            {"created_at": old, "model_version": "1", "backbone": "b", "label": "cat", "confidence": 0.5,
             "embedding": vector} for _ in range(n)])
        for registered in ("1", None, None):
            run = TrainingRun(status=RunStatus.SUCCEEDED if registered else RunStatus.FAILED, backbone="b",
                              labels=list(LABELS), params={}, registered_version=registered,
                              gate_passed=bool(registered), finished_at=old)
            session.add(run)
            session.flush()
            used = range(1, n + 1) if not registered else [i for i in range(1, n + 1) if i % 5 != 1]
            session.execute(insert(TrainingRunSample), [
                {"run_id": run.id, "sample_id": i, "split": Split.TRAIN, "label": "cat"} for i in used])
        session.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--postgres", action="store_true", help="on a throwaway PostgreSQL server")
    args = parser.parse_args()
    now = datetime.now(UTC)
    with database(args.postgres) as url, tempfile.TemporaryDirectory() as home:
        svc = migrated_services(Settings(home=Path(home), database_url=url))
        started = time.perf_counter()
        fill(svc, args.samples, now - timedelta(days=200))
        Console().print(f"filled {args.samples} samples in {time.perf_counter() - started:.1f} s "
                        f"({'PostgreSQL' if url else 'SQLite'})")
        table = Table("run", "seconds", "found/deleted by rule")
        for name, apply in (("report", False), ("--apply", True), ("again", True)):
            started = time.perf_counter()
            with svc.session() as session:
                report = collect(session, svc.store, RetentionPolicy(), apply=apply, now=now).to_dict()
            rules = ", ".join(f"{r['name']} {r['found']}/{r['deleted']}" for r in report["rules"] if r["found"])
            table.add_row(name, f"{time.perf_counter() - started:.1f}", rules or "nothing")
        Console().print(table)


if __name__ == "__main__":
    main()
