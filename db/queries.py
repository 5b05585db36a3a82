"""Every query Sprout runs, as keyword-only functions over a ``Session`` (routes and the CLI build none).

Writes stay with the domain code that owns the rule (``model.data.samples``, ``model.review.actions``,
``model.learning.pipeline``); this module only reads, plus the one-statement helpers those writes need.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, func, select, text, update
from sqlalchemy.orm import Session

from db.models import (
    ChampionChange,
    ChampionChangeKind,
    Embedding,
    InstanceSecret,
    LabelChange,
    Review,
    ReviewAction,
    RevokedToken,
    RunStatus,
    Sample,
    SampleSource,
    SampleStatus,
    Split,
    TrainingRun,
    TrainingRunSample,
    User,
)

_IN_CHUNK = 500  # keep IN (...) lists well below every driver's parameter limit


def ping(session: Session) -> None:
    """One round trip to the database (raises the driver's error when it is down)."""
    session.execute(text("SELECT 1"))


def instance_secret(session: Session, *, name: str) -> str | None:
    """A secret of this installation kept in the database (written by a migration)."""
    row = session.get(InstanceSecret, name)
    return row.value if row else None


# --- users ---------------------------------------------------------------------------------------


def get_user(session: Session, *, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def is_token_revoked(session: Session, *, jti: str) -> bool:
    return session.get(RevokedToken, jti) is not None


def prune_revoked_tokens(session: Session, *, before: datetime) -> None:
    """Forget revocations of tokens that expired before ``before`` (they are refused for their expiry)."""
    session.execute(delete(RevokedToken).where(RevokedToken.expires_at < before))


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


# --- samples -------------------------------------------------------------------------------------


def find_sample(session: Session, *, sample_id: int) -> Sample | None:
    """The sample with this id, or None (``model.data.samples.get_sample`` raises NotFoundError instead)."""
    return session.get(Sample, sample_id)


def get_sample_by_sha(session: Session, *, sha256: str) -> Sample | None:
    return session.scalar(select(Sample).where(Sample.sha256 == sha256))


def update_sample_if(session: Session, *, sample_id: int, expected: SampleStatus, values: dict[str, Any]) -> bool:
    """Compare-and-set: ``UPDATE samples SET values WHERE id = sample_id AND status = expected`` in the
    session's transaction. False when another transaction changed the status first (it holds the row lock
    until it commits, so exactly one of two concurrent writers wins)."""
    result = session.execute(
        update(Sample).where(Sample.id == sample_id, Sample.status == expected).values(**values)
        .execution_options(synchronize_session="fetch"))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def all_samples(session: Session) -> list[Sample]:
    return list(session.scalars(select(Sample).order_by(Sample.id)))


def approved_samples(session: Session) -> list[Sample]:
    return list(session.scalars(select(Sample).where(Sample.status == SampleStatus.APPROVED).order_by(Sample.id)))


def count_samples(session: Session, *, status: SampleStatus | None) -> int:
    """Samples of ``status`` (None: every sample)."""
    query = select(func.count(Sample.id))
    return int(session.scalar(query.where(Sample.status == status) if status is not None else query) or 0)


def count_samples_by_status(session: Session) -> dict[SampleStatus, int]:
    """Samples per review status, zero where there are none."""
    found = {SampleStatus(status): int(n) for status, n in session.execute(
        select(Sample.status, func.count()).group_by(Sample.status)).tuples()}
    return {status: found.get(status, 0) for status in SampleStatus}


def count_approved_by_label(session: Session) -> dict[str, int]:
    rows = session.execute(select(Sample.label, func.count()).where(
        Sample.status == SampleStatus.APPROVED, Sample.label.is_not(None)).group_by(Sample.label)).tuples()
    return {str(label): int(n) for label, n in sorted(rows)}


def count_approved_by_label_and_split(session: Session) -> dict[tuple[str, Split], int]:
    rows = session.execute(select(Sample.label, Sample.split, func.count()).where(
        Sample.status == SampleStatus.APPROVED, Sample.label.is_not(None)).group_by(Sample.label, Sample.split))
    return {(str(label), Split(split)): int(n) for label, split, n in rows.tuples()}


# --- training runs -------------------------------------------------------------------------------


def last_succeeded_run(session: Session) -> TrainingRun | None:
    """The most recent training run that finished successfully."""
    return session.scalar(
        select(TrainingRun).where(TrainingRun.status == RunStatus.SUCCEEDED).order_by(TrainingRun.id.desc()))


def count_new_approved(session: Session) -> int:
    """Approved samples new since the last successful run: approved after it started (``approved_at``, which every
    approval, correction and relabel sets) and not in its lineage. A sample approved before that run started and
    left out by it (a label it could not train yet) is not new. One range of the ``(status, approved_at)`` index
    and a lineage probe per row found: the same cost with 1,000 or 100,000 samples."""
    query = select(func.count(Sample.id)).where(Sample.status == SampleStatus.APPROVED)
    run = last_succeeded_run(session)
    if run is not None:
        seen = exists().where(TrainingRunSample.run_id == run.id, TrainingRunSample.sample_id == Sample.id)
        query = query.where(Sample.approved_at >= run.started_at, ~seen)
    return int(session.scalar(query) or 0)


def get_run(session: Session, *, run_id: int | None) -> TrainingRun | None:
    """A training run by id, or the latest one when ``run_id`` is None."""
    if run_id is not None:
        return session.get(TrainingRun, run_id)
    return session.scalar(select(TrainingRun).order_by(TrainingRun.id.desc()))


def get_run_by_trigger_key(session: Session, *, key: str, status: RunStatus | None = None) -> TrainingRun | None:
    query = select(TrainingRun).where(TrainingRun.trigger_key == key)
    if status is not None:
        query = query.where(TrainingRun.status == status)
    return session.scalar(query)


def get_run_by_version(session: Session, *, version: str) -> TrainingRun | None:
    """The run that produced a registered model version."""
    return session.scalar(select(TrainingRun).where(TrainingRun.registered_version == version))


def expected_artifact(session: Session, *, version: str) -> tuple[bool, str | None]:
    """``(known, sha256)`` of a registered version: ``known`` when a Sprout run registered it (its digest
    is None only for runs from before digests were recorded)."""
    run = get_run_by_version(session, version=version)
    return (run is not None, run.artifact_sha256 if run else None)


def list_runs(session: Session, *, limit: int | None = None, newest_first: bool = True) -> list[TrainingRun]:
    query = select(TrainingRun).order_by(TrainingRun.id.desc() if newest_first else TrainingRun.id.asc())
    return list(session.scalars(query.limit(limit) if limit is not None else query))


def runs_by_version(session: Session) -> dict[str, TrainingRun]:
    """Every run that registered a model version, keyed by that version."""
    runs = session.scalars(select(TrainingRun).where(TrainingRun.registered_version.is_not(None)))
    return {str(r.registered_version): r for r in runs}


# --- embedding cache -----------------------------------------------------------------------------


def cached_embeddings(session: Session, *, backbone: str, hashes: Sequence[str]) -> dict[str, bytes]:
    """Raw cached vectors (float32 bytes) of ``hashes`` for ``backbone``; missing ones are absent."""
    found: dict[str, bytes] = {}
    wanted = list(dict.fromkeys(hashes))
    for start in range(0, len(wanted), _IN_CHUNK):
        rows = session.execute(select(Embedding.sha256, Embedding.vector).where(
            Embedding.backbone == backbone, Embedding.sha256.in_(wanted[start : start + _IN_CHUNK])))
        found.update((sha, bytes(blob)) for sha, blob in rows)
    return found


# --- lineage and review history ------------------------------------------------------------------


def run_lineage(session: Session, *, run_id: int) -> list[tuple[TrainingRunSample, Sample]]:
    """The samples a run trained and was tested on, each with its lineage row (split and label as used)."""
    rows = session.execute(select(TrainingRunSample, Sample).join(Sample, Sample.id == TrainingRunSample.sample_id)
                           .where(TrainingRunSample.run_id == run_id).order_by(Sample.id))
    return [(lineage, sample) for lineage, sample in rows]


def lineage_labels(session: Session, *, run_id: int) -> dict[int, tuple[str, str]]:
    """``{sample id: (the label the run trained or tested it with, the sample's sha256)}`` of the run's samples
    that still exist (one index range of the lineage)."""
    rows = session.execute(select(TrainingRunSample.sample_id, TrainingRunSample.label, Sample.sha256)
                           .join(Sample, Sample.id == TrainingRunSample.sample_id)
                           .where(TrainingRunSample.run_id == run_id)).tuples()
    return {int(i): (str(label), str(sha)) for i, label, sha in rows}


def training_sample_ids(session: Session, *, run_id: int) -> list[int]:
    """The ids of the samples a run trained on (train and val; not its test set)."""
    return list(session.scalars(select(TrainingRunSample.sample_id).where(
        TrainingRunSample.run_id == run_id, TrainingRunSample.split != Split.TEST)))


def approval_reviews(session: Session, *, sample_ids: Sequence[int]) -> list[Review]:
    """The decisions that gave these samples a label (approve, correct, relabel), oldest first."""
    found: list[Review] = []
    wanted = list(dict.fromkeys(sample_ids))
    actions = (ReviewAction.APPROVE, ReviewAction.CORRECT, ReviewAction.RELABEL)
    for start in range(0, len(wanted), _IN_CHUNK):
        found.extend(session.scalars(select(Review).where(
            Review.sample_id.in_(wanted[start : start + _IN_CHUNK]), Review.action.in_(actions))))
    return sorted(found, key=lambda r: r.id)


def latest_review(session: Session, *, sample_id: int) -> Review | None:
    """The sample's newest audit row (a decision, an admin's relabel, a taxonomy change, an undo), if any."""
    return session.scalars(select(Review).where(Review.sample_id == sample_id).order_by(Review.id.desc())
                           .limit(1)).first()


def reviews_by(session: Session, *, reviewer: str, actions: Sequence[ReviewAction], limit: int) -> list[Review]:
    """``reviewer``'s own audit rows of these actions (none of a taxonomy change), newest first."""
    return list(session.scalars(select(Review).where(
        Review.reviewer == reviewer, Review.action.in_(actions), Review.label_change_id.is_(None))
        .order_by(Review.id.desc()).limit(limit)))


def latest_review_ids(session: Session, *, sample_ids: Sequence[int]) -> dict[int, int]:
    """Each sample's newest audit row id (samples without one are left out)."""
    wanted, found = list(dict.fromkeys(sample_ids)), dict[int, int]()
    for start in range(0, len(wanted), _IN_CHUNK):
        rows = session.execute(select(Review.sample_id, func.max(Review.id))
                               .where(Review.sample_id.in_(wanted[start : start + _IN_CHUNK]))
                               .group_by(Review.sample_id))
        found.update((sample_id, review_id) for sample_id, review_id in rows)
    return found


def samples_by_id(session: Session, *, ids: Sequence[int]) -> dict[int, Sample]:
    """The samples with these ids (missing ones are left out)."""
    if not ids:
        return {}
    return {s.id: s for s in session.scalars(select(Sample).where(Sample.id.in_(list(ids))))}


def approved_labels_by_group(session: Session, *, groups: Sequence[int]) -> dict[int, list[str]]:
    """The labels of the approved samples in these near-duplicate groups, ``{group: [label, ...]}``."""
    wanted = sorted(set(groups))
    found: dict[int, list[str]] = {}
    for start in range(0, len(wanted), _IN_CHUNK):
        rows = session.execute(select(Sample.duplicate_group, Sample.label).where(
            Sample.duplicate_group.in_(wanted[start : start + _IN_CHUNK]), Sample.status == SampleStatus.APPROVED)
            .order_by(Sample.id))
        for group, label in rows:
            if group is not None and label is not None:
                found.setdefault(group, []).append(label)
    return found


def sample_embeddings_after(session: Session, *, backbone: str, after_id: int,
                            limit: int) -> list[tuple[int, int, bytes]]:
    """``(embedding_id, sample_id, vector)`` of the first ``limit`` of the samples' cached ``backbone`` embeddings
    with id > after_id, by id."""
    rows = session.execute(
        select(Embedding.id, Sample.id, Embedding.vector)
        .join(Sample, Sample.sha256 == Embedding.sha256)
        .where(Embedding.backbone == backbone, Embedding.id > after_id)
        .order_by(Embedding.id).limit(limit))
    return [(int(eid), int(sid), bytes(vec)) for eid, sid, vec in rows]


def set_duplicate_group(session: Session, *, sample_id: int, group: int) -> None:
    """Mark a sample as (the head of) a near-duplicate group, in the session's transaction."""
    session.execute(update(Sample).where(Sample.id == sample_id, Sample.duplicate_group.is_(None))
                    .values(duplicate_group=group).execution_options(synchronize_session=False))


def hold_lock(session: Session, *, key: int, shared: bool = False) -> None:
    """On PostgreSQL, take advisory lock ``key`` until the session's transaction ends: exclusive, or ``shared``
    (shared holders run side by side; an exclusive one waits for them all). A no-op on SQLite, whose writers are
    serialised anyway."""
    if session.get_bind().dialect.name == "postgresql":
        function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        session.execute(text(f"SELECT {function}(:key)"), {"key": key})


def count_captures_since(session: Session, *, since: datetime) -> int:
    """Samples captured from production predictions since ``since``."""
    return int(session.scalar(select(func.count(Sample.id)).where(
        Sample.source == SampleSource.CAPTURE, Sample.created_at >= since)) or 0)


def samples_with_status(session: Session, *, status: SampleStatus | None, limit: int) -> list[Sample]:
    """Up to ``limit`` samples with this status (any, with None), oldest first."""
    query = select(Sample).order_by(Sample.id).limit(limit)
    return list(session.scalars(query.where(Sample.status == status) if status is not None else query))


def last_promoted_run(session: Session) -> TrainingRun | None:
    """The most recent run whose model was promoted (the champion's, unless an admin rolled back)."""
    return session.scalar(select(TrainingRun).where(TrainingRun.promoted.is_(True)).order_by(TrainingRun.id.desc()))


# --- taxonomy changes (rename, merge, retire) ----------------------------------------------------


def label_changes(session: Session, *, since: datetime | None = None, limit: int | None = None,
                  newest_first: bool = False) -> list[LabelChange]:
    """The taxonomy changes (all, or those made after ``since``), oldest first unless ``newest_first``."""
    query = select(LabelChange)
    if since is not None:
        query = query.where(LabelChange.created_at > since)
    query = query.order_by(LabelChange.id.desc() if newest_first else LabelChange.id.asc())
    return list(session.scalars(query.limit(limit) if limit is not None else query))


def approved_with_label(session: Session, *, label: str) -> list[Sample]:
    """The approved samples filed under ``label``."""
    return list(session.scalars(select(Sample).where(Sample.status == SampleStatus.APPROVED, Sample.label == label)
                                .order_by(Sample.id)))


def pending_naming(session: Session, *, label: str) -> list[Sample]:
    """The pending samples whose prediction or suggestion is ``label``."""
    return list(session.scalars(select(Sample).where(
        Sample.status == SampleStatus.PENDING,
        (Sample.predicted_label == label) | (Sample.suggested_label == label)).order_by(Sample.id)))


def update_sample_where(session: Session, *, sample_id: int, expected: dict[str, Any],
                        values: dict[str, Any]) -> bool:
    """Compare-and-set on several columns: ``UPDATE samples SET values WHERE id = sample_id AND column = value``
    for each of ``expected``, in the session's transaction. False when another transaction changed one first."""
    conditions = [getattr(Sample, column) == value for column, value in expected.items()]
    result = session.execute(update(Sample).where(Sample.id == sample_id, *conditions).values(**values)
                             .execution_options(synchronize_session=False))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def record_champion_change(session: Session, *, kind: ChampionChangeKind, version: str, previous: str | None,
                           changed_by: str, run_id: int | None = None) -> ChampionChange:
    """Add the audit row of a change of the champion (the caller commits)."""
    row = ChampionChange(kind=kind, version=version, previous=previous, changed_by=changed_by, run_id=run_id)
    session.add(row)
    return row


def champion_changes(session: Session, *, limit: int = 20) -> list[ChampionChange]:
    """The latest changes of the champion, newest first."""
    return list(session.scalars(select(ChampionChange).order_by(ChampionChange.id.desc()).limit(limit)))


# --- training at scale (issue 26) ------------------------------------------------------------------

EMBEDDING_SCAN_FROM = 5_000  # from this many hashes on, one scan of the backbone's rows beats IN (...) lookups


def embedding_vectors(session: Session, *, backbone: str, hashes: Sequence[str]) -> Iterator[tuple[str, bytes]]:
    """The cached vectors (float32 bytes) of ``hashes`` for ``backbone``, streamed as ``(sha256, bytes)`` rows
    (missing ones are absent; nothing collects every blob at once): by ``IN`` lists for a few hashes, else one
    query over the backbone's rows read ``yield_per`` rows at a time (a retrain of 100k samples)."""
    wanted = set(hashes)
    if len(wanted) < EMBEDDING_SCAN_FROM:
        listed = list(wanted)
        for start in range(0, len(listed), _IN_CHUNK):
            yield from ((sha, blob) for sha, blob in session.execute(select(Embedding.sha256, Embedding.vector).where(
                Embedding.backbone == backbone, Embedding.sha256.in_(listed[start : start + _IN_CHUNK]))))
        return
    rows = session.execute(select(Embedding.sha256, Embedding.vector).where(Embedding.backbone == backbone)
                           .execution_options(yield_per=2_000))
    yield from ((sha, blob) for sha, blob in rows if sha in wanted)


def recent_succeeded_runs(session: Session, *, limit: int) -> list[TrainingRun]:
    """The latest ``limit`` succeeded training runs, newest first."""
    return list(session.scalars(select(TrainingRun).where(TrainingRun.status == RunStatus.SUCCEEDED)
                                .order_by(TrainingRun.id.desc()).limit(limit)))
