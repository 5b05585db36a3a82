"""Queries of retention (``sprout gc``): each rule names the rows it may delete; they are measured, then deleted in
batches by primary key, the rule's condition checked again in every ``DELETE`` (a row that changed since it was
listed, e.g. a rejected sample approved meanwhile, is left alone)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Text,
    and_,
    cast,
    delete,
    exists,
    false,
    func,
    literal,
    null,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from db.models import (
    Base,
    Embedding,
    RecentPrediction,
    Review,
    RevokedToken,
    Rollout,
    RolloutObservation,
    RunStatus,
    Sample,
    SampleStatus,
    TrainingRun,
    TrainingRunSample,
)

BATCH = 1000  # rows per DELETE (and per commit): short transactions beside the API's writes
_IN_CHUNK = 500


@dataclass(frozen=True)
class Expired:
    """The rows of ``table`` one rule may delete: their key columns (one, or two of which the first groups the
    rows, as a run groups its lineage), the condition, a row's payload bytes."""

    table: type[Base]
    keys: tuple[InstrumentedAttribute[Any], ...]
    where: ColumnElement[bool]
    size: ColumnElement[Any] | None = None


def measure(session: Session, expired: Expired) -> tuple[int, int]:
    """``(rows, payload bytes)`` the rule would delete now."""
    size = func.coalesce(func.sum(expired.size), 0) if expired.size is not None else literal(0)
    rows, total = session.execute(select(func.count(), size).select_from(expired.table).where(expired.where)).one()
    return int(rows), int(total or 0)


def next_batch(session: Session, expired: Expired, *, after: tuple[Any, ...] | None = None,
               limit: int | None = None) -> list[tuple[Any, ...]]:
    """The keys of up to ``limit`` rows the rule may delete, in key order, after the key ``after`` (keyset
    pagination: each batch starts where the last ended, never rescanning what was deleted or refused)."""
    query = select(*expired.keys).where(expired.where).order_by(*expired.keys).limit(limit or BATCH)
    if after is not None:
        query = query.where(expired.keys[0] > after[0] if len(after) == 1 else tuple_(*expired.keys) > tuple_(*after))
    return [tuple(row) for row in session.execute(query)]


def delete_keys(session: Session, expired: Expired, keys: Sequence[tuple[Any, ...]]) -> int:
    """Delete the rows with these keys (consecutive in key order, from ``next_batch``) that the rule still allows
    (the caller commits); how many went. Two key columns: one range of the second per value of the first, which
    the primary key's index serves (an ``IN`` of a thousand pairs is a scan on PostgreSQL)."""
    if not keys:
        return 0
    conditions: list[ColumnElement[bool]]
    if len(expired.keys) == 1:
        conditions = [expired.keys[0].in_([k[0] for k in keys])]
    else:
        first, second = expired.keys
        conditions = [or_(*(and_(first == head, second.between(min(k[1] for k in group), max(k[1] for k in group)))
                            for head, group in ((h, list(g)) for h, g in groupby(keys, key=lambda k: k[0]))))]
    result = session.execute(delete(expired.table).where(*conditions, expired.where)
                             .execution_options(synchronize_session=False))
    return int(result.rowcount)  # type: ignore[attr-defined]


# --- the rules -----------------------------------------------------------------------------------


def predictions_beyond_window(session: Session, *, keep: int) -> Expired:
    """Recent predictions older than the newest ``keep`` (the drift window's writer prunes the same way)."""
    cutoff = session.scalar(select(RecentPrediction.id).order_by(RecentPrediction.id.desc()).offset(keep - 1).limit(1))
    where = RecentPrediction.id < cutoff if cutoff is not None else false()
    return Expired(RecentPrediction, (RecentPrediction.id,), where, func.length(RecentPrediction.embedding))


def expired_revocations(*, now: datetime) -> Expired:
    """Revocations of tokens that have expired (refused for their expiry anyway)."""
    return Expired(RevokedToken, (RevokedToken.jti,), RevokedToken.expires_at < now)


def observations_of_ended_rollouts(*, ended_before: datetime) -> Expired:
    """Live observations of rollouts that ended before ``ended_before`` (never the open rollout's)."""
    ended = select(Rollout.id).where(Rollout.open.is_not(True), Rollout.ended_at.is_not(None),
                                     Rollout.ended_at < ended_before)
    return Expired(RolloutObservation, (RolloutObservation.id,), RolloutObservation.rollout_id.in_(ended))


def unregistered_runs(*, finished_before: datetime) -> Select[int]:
    """Finished runs that registered no version, did not pass the gate and are not the latest successful run
    (whose lineage says which approvals are new), finished before ``finished_before``: their lineage may go."""
    latest = select(func.max(TrainingRun.id)).where(TrainingRun.status == RunStatus.SUCCEEDED).scalar_subquery()
    return select(TrainingRun.id).where(
        TrainingRun.status != RunStatus.RUNNING, TrainingRun.registered_version.is_(None),
        TrainingRun.gate_passed.is_not(True), TrainingRun.finished_at.is_not(None),
        TrainingRun.finished_at < finished_before, TrainingRun.id != func.coalesce(latest, 0))


def lineage_of_unregistered_runs(*, finished_before: datetime) -> Expired:
    """The lineage rows of ``unregistered_runs``."""
    return Expired(TrainingRunSample, (TrainingRunSample.run_id, TrainingRunSample.sample_id),
                   TrainingRunSample.run_id.in_(unregistered_runs(finished_before=finished_before)))


def out_of_fold_of_old_runs(*, finished_before: datetime) -> Expired:
    """The out-of-fold probabilities (one per sample and label) of runs finished before ``finished_before`` other
    than the latest successful run, the only one ``sprout label-issues`` reads; the run's row stays. (A run without
    them may hold JSON ``null``: not counted.)"""
    latest = select(func.max(TrainingRun.id)).where(TrainingRun.status == RunStatus.SUCCEEDED).scalar_subquery()
    stored = cast(TrainingRun.out_of_fold, Text)
    where = and_(stored.is_not(None), stored != "null", TrainingRun.finished_at.is_not(None),
                 TrainingRun.finished_at < finished_before, TrainingRun.id != func.coalesce(latest, 0))
    return Expired(TrainingRun, (TrainingRun.id,), where, func.length(stored))


def clear_out_of_fold(session: Session, expired: Expired, keys: Sequence[tuple[Any, ...]]) -> int:
    """Set the out-of-fold probabilities of these runs to NULL if the rule still allows (the caller commits)."""
    if not keys:
        return 0
    result = session.execute(update(TrainingRun).where(TrainingRun.id.in_([k[0] for k in keys]), expired.where)
                             .values(out_of_fold=null()).execution_options(synchronize_session=False))
    return int(result.rowcount)  # type: ignore[attr-defined]


def unreferenced_rejected_samples(*, changed_before: datetime, lineage_before: datetime | None) -> Expired:
    """Rejected samples last changed before ``changed_before`` that nothing refers to: in no training run's
    lineage (but that of ``unregistered_runs`` finished before ``lineage_before``, which goes first), heading no
    near-duplicate group another sample belongs to, and not the newest sample (SQLite may give a deleted highest
    id to the next row, and ids are named in reviews and near-duplicate lists).
    Payload: the stored image and the sample's cached embeddings."""
    other = aliased(Sample)
    # Uncorrelated NOT IN: one pass over each table (the lineage has no index led by sample_id).
    in_lineage = select(TrainingRunSample.sample_id)
    if lineage_before is not None:
        expiring = unregistered_runs(finished_before=lineage_before)
        in_lineage = in_lineage.where(TrainingRunSample.run_id.not_in(expiring))
    heads = select(other.duplicate_group).where(other.duplicate_group.is_not(None), other.id != other.duplicate_group)
    embedded = (select(func.coalesce(func.sum(func.length(Embedding.vector)), 0))
                .where(Embedding.sha256 == Sample.sha256).scalar_subquery())
    where = and_(
        Sample.status == SampleStatus.REJECTED, Sample.updated_at < changed_before, Sample.id.not_in(in_lineage),
        Sample.id.not_in(heads), Sample.id < select(func.max(other.id)).scalar_subquery())
    return Expired(Sample, (Sample.id,), where, Sample.size_bytes + embedded)


def delete_rejected(session: Session, expired: Expired, keys: Sequence[tuple[Any, ...]]) -> list[tuple[str, str]]:
    """Delete these rejected samples if the rule still allows, with their review rows and cached embeddings (the
    caller commits); ``(sha256, object_key)`` of each sample deleted, whose object the caller deletes after."""
    if not keys:
        return []
    gone = list(session.execute(
        delete(Sample).where(Sample.id.in_([k[0] for k in keys]), expired.where)
        .returning(Sample.id, Sample.sha256, Sample.object_key).execution_options(synchronize_session=False)))
    ids, hashes = [int(row[0]) for row in gone], [str(row[1]) for row in gone]
    if ids:  # the foreign key cascades on PostgreSQL and SQLite alike; said again for a database without it
        session.execute(delete(Review).where(Review.sample_id.in_(ids)).execution_options(synchronize_session=False))
        session.execute(delete(Embedding).where(Embedding.sha256.in_(hashes))
                        .execution_options(synchronize_session=False))
    return [(str(sha), str(key)) for _, sha, key in gone]


def embeddings_without_sample(*, created_before: datetime) -> Expired:
    """Cached embeddings of images no sample has (any backbone), cached before ``created_before``."""
    where = and_(~exists().where(Sample.sha256 == Embedding.sha256), Embedding.created_at < created_before)
    return Expired(Embedding, (Embedding.id,), where, func.length(Embedding.vector))


def sample_hashes(session: Session) -> set[str]:
    """The content hash of every sample (what object keys are named after)."""
    return set(session.scalars(select(Sample.sha256)))


def known_hashes(session: Session, hashes: Sequence[str]) -> set[str]:
    """Which of ``hashes`` a sample has now."""
    wanted, found = list(dict.fromkeys(hashes)), set[str]()
    for start in range(0, len(wanted), _IN_CHUNK):
        found.update(session.scalars(select(Sample.sha256).where(Sample.sha256.in_(wanted[start:start + _IN_CHUNK]))))
    return found
