"""Bounded growth (``sprout gc``): every table and object-store prefix that grows with traffic has a retention rule
(``SPROUT_RETAIN_*``, ``SPROUT_DRIFT_WINDOW``) or is kept on purpose (docs/operations/retention.md says which and
why). ``collect`` reports what the rules would delete, rows and payload bytes; with ``apply`` it deletes them, in
batches of ``db.retention.BATCH`` rows, each its own short transaction.

Nothing still referenced goes: a sample a training run's lineage holds, an embedding of an existing sample, the
open rollout's observations, the lineage of a registered version. An object is deleted only after its row (an
interruption leaves at most one batch of orphan objects, which a later run deletes) and only in Sprout's own layout.
Orphans are few when the database is the store's own (a crashed upload, an interrupted run): they are deleted only
when nearly every sample's image is in the store and there are at most ``max_orphans`` of them; anything else
(another installation's database, a restored older backup: every newer image would look orphaned) is refused.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from db import retention as rules
from model.core.settings import Settings
from model.data.storage import ObjectStore, sha_of_key

log = logging.getLogger(__name__)

# Sprout's own object keys (model/data/storage.py): pending/<sha>.<ext>, rejected/…, labeled/<label>/<sha>.<ext>
SPROUT_KEY = re.compile(r"^(?:pending|rejected|labeled/[A-Za-z0-9][A-Za-z0-9_.-]{0,63})/[0-9a-f]{64}\.[a-z0-9]{1,8}$")
PRESENT_SHARE = 0.9  # the share of the samples whose image the store must hold before any orphan is deleted


@dataclass(frozen=True)
class RetentionPolicy:
    """The retention rules' settings (0 days: keep everything of that kind)."""

    drift_window: int = 500
    rejected_days: int = 90
    rollout_observation_days: int = 90
    run_lineage_days: int = 90
    orphan_grace: timedelta = timedelta(hours=24)
    max_orphans: int = 1000  # more orphan objects than this are refused (a command-line option raises it)

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        return cls(drift_window=settings.drift_window, rejected_days=settings.retain_rejected_days,
                   rollout_observation_days=settings.retain_rollout_observations_days,
                   run_lineage_days=settings.retain_run_lineage_days,
                   orphan_grace=timedelta(hours=settings.gc_orphan_grace_hours))


@dataclass
class RuleReport:
    """One rule: what it covers, what it found (rows or objects, payload bytes) and what it deleted."""

    name: str
    rule: str
    found: int = 0
    bytes: int = 0
    deleted: int = 0
    refused: str | None = None  # why nothing was deleted although something was found


@dataclass
class GcReport:
    applied: bool
    rules: list[RuleReport] = field(default_factory=list)

    @property
    def found(self) -> int:
        return sum(r.found for r in self.rules)

    @property
    def deleted(self) -> int:
        return sum(r.deleted for r in self.rules)

    def to_dict(self) -> dict[str, Any]:
        """The CLI's JSON shape."""
        return {"applied": self.applied, "found": self.found, "bytes": sum(r.bytes for r in self.rules),
                "deleted": self.deleted, "rules": [asdict(r) for r in self.rules]}


def _after(days: int, what: str, when: str, setting: str) -> str:
    return f"{what}: deleted {days} days after {when} ({setting})" if days else f"{what}: kept ({setting}=0)"


def collect(session: Session, store: ObjectStore, policy: RetentionPolicy, *, apply: bool = False,
            now: datetime | None = None) -> GcReport:
    """Measure every rule (and with ``apply``, enforce it), in an order where each deletion's leftovers are
    found by a later rule of the same run: rejected samples before orphan embeddings and objects."""
    now = now or datetime.now(UTC)
    report = GcReport(applied=apply)
    observations_before = now - timedelta(days=policy.rollout_observation_days)
    lineage_before = now - timedelta(days=policy.run_lineage_days)
    table_rules: list[tuple[str, str, Callable[[], rules.Expired | None]]] = [
        ("recent_predictions", f"all but the newest {policy.drift_window} deleted (SPROUT_DRIFT_WINDOW)",
         lambda: rules.predictions_beyond_window(session, keep=policy.drift_window)),
        ("revoked_tokens", "revocations deleted once the token has expired",
         lambda: rules.expired_revocations(now=now)),
        ("rollout_observations", _after(policy.rollout_observation_days, "observations of ended rollouts",
                                        "the end", "SPROUT_RETAIN_ROLLOUT_OBSERVATIONS_DAYS"),
         lambda: rules.observations_of_ended_rollouts(ended_before=observations_before)
         if policy.rollout_observation_days else None),
        ("training_run_samples", _after(policy.run_lineage_days, "lineage of runs that registered no version",
                                        "the run", "SPROUT_RETAIN_RUN_LINEAGE_DAYS"),
         lambda: rules.lineage_of_unregistered_runs(finished_before=lineage_before) if policy.run_lineage_days
         else None),
    ]
    for name, rule, expired in table_rules:
        report.rules.append(_enforce(session, RuleReport(name, rule), expired(), apply))
    report.rules.append(_enforce(session, RuleReport("out_of_fold", _after(
        policy.run_lineage_days, "out-of-fold probabilities of runs but the latest successful one", "the run",
        "SPROUT_RETAIN_RUN_LINEAGE_DAYS")), rules.out_of_fold_of_old_runs(finished_before=lineage_before)
        if policy.run_lineage_days else None, apply, rules.clear_out_of_fold))
    report.rules.append(_rejected(session, store, policy, now, apply))
    report.rules.append(_enforce(session, RuleReport(
        "embeddings", f"embeddings of images no sample has: deleted {_hours(policy.orphan_grace)} after caching "
        "(SPROUT_GC_ORPHAN_GRACE_HOURS)"), rules.embeddings_without_sample(created_before=now - policy.orphan_grace),
        apply))
    report.rules.append(_orphan_objects(session, store, policy, now, apply))
    session.rollback()
    for done in report.rules:
        if done.deleted or done.refused:
            log.info("gc %s: %d found, %d deleted%s", done.name, done.found, done.deleted,
                     f" (refused: {done.refused})" if done.refused else "")
    return report


def _hours(grace: timedelta) -> str:
    return f"{grace.total_seconds() / 3600:g} h"


def _enforce(session: Session, report: RuleReport, expired: rules.Expired | None, apply: bool,
             remove: Callable[[Session, rules.Expired, list[tuple[object, ...]]], int] = rules.delete_keys,
             ) -> RuleReport:
    if expired is None:
        return report
    report.found, report.bytes = rules.measure(session, expired)
    if apply:
        for keys in _batches(session, expired):
            report.deleted += remove(session, expired, keys)
            session.commit()
    return report


def _batches(session: Session, expired: rules.Expired) -> Iterator[list[tuple[object, ...]]]:
    """Batches of keys, in key order, until the rule finds no more."""
    keys = rules.next_batch(session, expired)
    while keys:
        yield keys
        keys = rules.next_batch(session, expired, after=keys[-1])


def _rejected(session: Session, store: ObjectStore, policy: RetentionPolicy, now: datetime,
              apply: bool) -> RuleReport:
    report = RuleReport("rejected_samples", _after(
        policy.rejected_days, "rejected samples nothing refers to, with their images, embeddings and reviews",
        "their last change", "SPROUT_RETAIN_REJECTED_DAYS"))
    if not policy.rejected_days:
        return report
    lineage_before = now - timedelta(days=policy.run_lineage_days) if policy.run_lineage_days else None
    expired = rules.unreferenced_rejected_samples(changed_before=now - timedelta(days=policy.rejected_days),
                                                  lineage_before=lineage_before)
    report.found, report.bytes = rules.measure(session, expired)
    if apply:
        for keys in _batches(session, expired):
            gone = rules.delete_rejected(session, expired, keys)
            session.commit()  # rows first: an interruption leaves orphan objects, deleted by a later run
            for _, key in gone:
                store.delete(key)
            report.deleted += len(gone)
    return report


def _orphan_objects(session: Session, store: ObjectStore, policy: RetentionPolicy, now: datetime,
                    apply: bool) -> RuleReport:
    report = RuleReport("objects", f"images in Sprout's key layout that no sample names: deleted "
                        f"{_hours(policy.orphan_grace)} after writing (SPROUT_GC_ORPHAN_GRACE_HOURS)")
    known = rules.sample_hashes(session)
    session.rollback()
    layout = [key for key in store.list() if SPROUT_KEY.match(key)]
    candidates = [key for key in layout if sha_of_key(key) not in known]
    orphans = [key for key in candidates if (written := store.modified(key)) is not None
               and now - written >= policy.orphan_grace]
    report.found = len(orphans)
    report.refused = _orphans_refused(len(orphans), known, {sha_of_key(key) for key in layout}, policy.max_orphans)
    if report.refused:
        return report
    for start in range(0, len(orphans), rules.BATCH):
        batch = orphans[start:start + rules.BATCH]
        report.bytes += sum(len(store.get(key)) for key in batch)
        if apply:  # ask again just before: a sample may have come for the image since the listing
            again = rules.known_hashes(session, [sha_of_key(key) for key in batch])
            session.rollback()
            for key in batch:
                if sha_of_key(key) not in again:
                    store.delete(key)
                    report.deleted += 1
    return report


def _orphans_refused(orphans: int, known: set[str], stored: set[str], limit: int) -> str | None:
    """Why these orphans must not be deleted (None: they may): the database does not look like the store's."""
    if not orphans:
        return None
    check = "check SPROUT_DATABASE_URL and SPROUT_S3_* (`sprout fsck` lists missing objects and orphans)"
    if not known:
        return f"the database has no samples but the store has {orphans} images: {check}"
    present = len(known & stored)
    if present < PRESENT_SHARE * len(known):
        return (f"only {present} of the database's {len(known)} samples have their image in this store: is it "
                f"the store's database? {check}")
    if orphans > limit:
        return (f"{orphans} orphan images, more than a crashed upload or an interrupted gc leaves (limit "
                f"{limit}): a restored older database? {check}; then raise the limit with --max-orphans")
    return None
