"""Consistency check between the database and the object store (``sprout fsck``).

A move is copy → commit → delete, so a crash leaves at most an extra copy of an object:
fsck restores a sample's object from such a copy when its own key is missing, removes copies
that are no longer referenced, and reports orphans (objects no sample knows) without touching them.

Safe while the API serves: a review in flight has copied but not yet committed, so its new copy looks
like a leftover. fsck therefore deletes a copy only if it is older than a grace period *and* the sample's
row, read again just before the delete, names another key whose object exists.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from db import queries
from model.data.storage import ObjectStore, sha_of_key


@dataclass
class FsckReport:
    checked: int = 0
    restored: list[str] = field(default_factory=list)
    removed_leftovers: list[str] = field(default_factory=list)
    kept_recent: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every sample has its object (orphans are reported, not errors)."""
        return not self.missing

    def to_dict(self) -> dict[str, object]:
        """The CLI's JSON shape."""
        return {"ok": self.ok, **asdict(self)}


DEFAULT_GRACE = timedelta(minutes=15)


def fsck(session: Session, store: ObjectStore, *, repair: bool = True, grace: timedelta = DEFAULT_GRACE,
         now: datetime | None = None) -> FsckReport:
    """Find (and with ``repair``, fix) half-done moves; report missing objects and orphans.

    Copies younger than ``grace`` are kept (``kept_recent``): they may belong to a move still in flight.
    """
    report = FsckReport()
    now = now or datetime.now(UTC)
    keys = set(store.list())
    copies: dict[str, list[str]] = {}
    for key in keys:
        copies.setdefault(sha_of_key(key), []).append(key)
    samples = {s.sha256: s for s in queries.all_samples(session)}
    report.checked = len(samples)

    for sha, sample in samples.items():
        if sample.object_key in keys:
            continue
        stored = sample.stored_sha256 or sha
        source = next((k for k in copies.get(sha, []) if hashlib.sha256(store.get(k)).hexdigest() == stored), None)
        if source is None:
            report.missing.append(sample.object_key)
            continue
        if repair:
            store.copy(source, sample.object_key)  # never deletes: safe whatever happens concurrently
            keys.add(sample.object_key)
        report.restored.append(sample.object_key)

    for sha, found in copies.items():
        owner = samples.get(sha)
        if owner is None:
            report.orphans.extend(sorted(found))
            continue
        for key in sorted(found):
            if key == owner.object_key or owner.object_key not in keys:
                continue
            written = store.modified(key)
            if written is None:
                continue  # already gone
            if now - written < grace:
                report.kept_recent.append(key)
                continue
            if repair and not _still_redundant(session, store, owner.id, key):
                continue
            if repair:
                store.delete(key)
            report.removed_leftovers.append(key)
    return report


def _still_redundant(session: Session, store: ObjectStore, sample_id: int, key: str) -> bool:
    """Re-read the sample's row now: ``key`` is redundant only if the row names another key that exists."""
    session.rollback()  # end the read transaction: the next read sees what concurrent reviews committed
    row = queries.find_sample(session, sample_id=sample_id)
    return row is not None and row.object_key != key and store.exists(row.object_key)
