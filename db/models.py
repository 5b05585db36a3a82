"""SQLAlchemy 2 typed ORM models. Tables change only through Alembic migrations."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    """Timezone-aware now, the only clock the models use."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of every Sprout table."""


class SampleStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class SampleSource(enum.StrEnum):
    UPLOAD = "upload"
    IMPORT = "import"
    CAPTURE = "capture"  # a low-confidence production prediction kept for review (opt-in)


class Split(enum.StrEnum):
    TRAIN = "train"
    VAL = "val"
    TEST = "test"


class ReviewAction(enum.StrEnum):
    APPROVE = "approve"
    CORRECT = "correct"
    REJECT = "reject"
    RELABEL = "relabel"  # an admin changes the label of an approved sample
    UNAPPROVE = "unapprove"  # an admin sends an approved sample back to the queue
    RENAME = "rename"  # a taxonomy change (``label_changes``): an admin renames a label
    MERGE = "merge"  # ... merges one label into another
    RETIRE = "retire"  # ... retires a label: its approved samples become rejected
    UNDO = "undo"  # a reviewer takes back their own decision within the undo window: pending again


class LabelChangeKind(enum.StrEnum):
    RENAME = "rename"
    MERGE = "merge"
    RETIRE = "retire"


class ChampionChangeKind(enum.StrEnum):
    PROMOTED_BY_RUN = "run"  # a training run's candidate passed the gate
    PROMOTED = "promoted"  # a person made a newer (or any other) version the champion
    ROLLED_BACK = "rollback"  # a person moved the champion back to an older version
    PROMOTED_BY_ROLLOUT = "rollout"  # a challenger won on live traffic (``sprout rollout judge``)


class RolloutMode(enum.StrEnum):
    SHADOW = "shadow"  # the challenger also scores a share of requests; the champion answers
    CANARY = "canary"  # the challenger answers a share of client keys


class RolloutOutcome(enum.StrEnum):
    PROMOTED = "promoted"  # the challenger became the champion
    ABORTED = "aborted"  # the challenger was discarded; the champion stayed


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])


class Sample(Base):
    """One image known to Sprout, pending review or labelled."""

    __tablename__ = "samples"
    __table_args__ = (Index("ix_samples_status_id", "status", "id"),
                      Index("ix_samples_status_approved_at", "status", "approved_at"),
                      Index("ix_samples_status_novelty", "status", "novelty", "id"),
                      Index("ix_samples_status_uncertainty", "status", "uncertainty_tier", "confidence", "id"),
                      Index("ix_samples_status_contradiction", "status", "contradiction", "id"),
                      Index("ix_samples_status_label_split", "status", "label", "split"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)  # of the upload: dedup, split, key name
    stored_sha256: Mapped[str | None] = mapped_column(String(64))  # of the stored (stripped) bytes; NULL: sha256
    object_key: Mapped[str] = mapped_column(String(512))
    content_type: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    status: Mapped[SampleStatus] = mapped_column(_enum(SampleStatus, "sample_status"))
    label: Mapped[str | None] = mapped_column(String(64), index=True)
    suggested_label: Mapped[str | None] = mapped_column(String(64))
    predicted_label: Mapped[str | None] = mapped_column(String(64))
    confidence: Mapped[float | None] = mapped_column(Float)
    predicted_by_version: Mapped[str | None] = mapped_column(String(32))
    predicted_unfamiliar: Mapped[bool | None] = mapped_column(Boolean)  # NULL: no prediction, or before issue 23
    # 1 - best cosine to the predicting version's train+val embeddings at submission; -1: not scored
    novelty: Mapped[float | None] = mapped_column(Float)
    # the review orders' keys, kept with the prediction: the database sorts along an index (see uncertainty_tier_of)
    uncertainty_tier: Mapped[int | None] = mapped_column(Integer)
    contradiction: Mapped[float | None] = mapped_column(Float)
    source: Mapped[SampleSource] = mapped_column(_enum(SampleSource, "sample_source"))
    split: Mapped[Split] = mapped_column(_enum(Split, "sample_split"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reviewed_by: Mapped[str | None] = mapped_column(String(64))
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    phash: Mapped[str | None] = mapped_column(String(16))  # perceptual hash, 16 hex digits
    near_duplicates: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)  # [{"id", "similarity"}] at intake
    duplicate_group: Mapped[int | None] = mapped_column(Integer, index=True)  # id of the group's first sample

    reviews: Mapped[list[Review]] = relationship(back_populates="sample", order_by="Review.id")


def uncertainty_tier_of(unfamiliar: bool | None, confidence: float | None) -> int:
    """The ``uncertainty`` order's first key: unfamiliar images first, and in each group those without a confidence
    before the least confident (0 unfamiliar unscored, 1 unfamiliar, 2 unscored, 3 the rest)."""
    return (0 if unfamiliar is True else 2) + (0 if confidence is None else 1)


def contradiction_of(suggested: str | None, predicted: str | None, confidence: float | None) -> float:
    """The ``suspect`` order's key for a pending sample: the model's confidence when it contradicts the submitter's
    suggestion, else -1."""
    return (confidence or 0.0) if suggested and predicted and suggested != predicted else -1.0


class Review(Base):
    """Audit log: one row per review decision."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id", ondelete="CASCADE"), index=True)
    reviewer: Mapped[str] = mapped_column(String(64))
    action: Mapped[ReviewAction] = mapped_column(_enum(ReviewAction, "review_action"))
    old_label: Mapped[str | None] = mapped_column(String(64))
    new_label: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The taxonomy change this row is part of (rename, merge, retire); NULL for a reviewer's own decision.
    label_change_id: Mapped[int | None] = mapped_column(ForeignKey("label_changes.id", ondelete="SET NULL"),
                                                        index=True)

    sample: Mapped[Sample] = relationship(back_populates="reviews")


class ChampionChange(Base):
    """Who made which version the champion, when, and which it replaced: a training run or a person."""

    __tablename__ = "champion_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[ChampionChangeKind] = mapped_column(_enum(ChampionChangeKind, "champion_change_kind"))
    version: Mapped[str] = mapped_column(String(32))
    previous: Mapped[str | None] = mapped_column(String(32))
    changed_by: Mapped[str] = mapped_column(String(64))  # a user name, "run 12", or "command line"
    run_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class LabelChange(Base):
    """A taxonomy change an admin made: ``label`` renamed or merged ``into`` another, or retired (``into`` NULL).

    Applied in order, the rows map any older label to today's (the champion's output columns, stale names in
    reviews); the samples it changed carry a ``reviews`` row each pointing here.
    """

    __tablename__ = "label_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[LabelChangeKind] = mapped_column(_enum(LabelChangeKind, "label_change_kind"))
    label: Mapped[str] = mapped_column(String(64), index=True)
    into: Mapped[str | None] = mapped_column(String(64))
    changed_by: Mapped[str] = mapped_column(String(64))
    approved: Mapped[int] = mapped_column(Integer, default=0)  # approved samples whose label or status changed
    pending: Mapped[int] = mapped_column(Integer, default=0)  # pending samples whose prediction/suggestion changed
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class User(Base):
    """A reviewer account. Only a password hash is stored."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Moved on by a new password or a disabling: tokens of an earlier generation are refused.
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TrainingRun(Base):
    """One training attempt, its metrics, the gate's decision and the resulting model version."""

    __tablename__ = "training_runs"
    __table_args__ = (UniqueConstraint("trigger_key", name="uq_training_runs_trigger_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[RunStatus] = mapped_column(_enum(RunStatus, "run_status"), default=RunStatus.RUNNING)
    backbone: Mapped[str] = mapped_column(String(64))
    labels: Mapped[list[str]] = mapped_column(JSON, default=list)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    champion_version: Mapped[str | None] = mapped_column(String(32))
    champion_metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    gate_passed: Mapped[bool | None] = mapped_column(Boolean)
    gate_reason: Mapped[str | None] = mapped_column(Text)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    registered_version: Mapped[str | None] = mapped_column(String(32))
    artifact_sha256: Mapped[str | None] = mapped_column(String(64))  # of the ONNX file logged: the API checks it
    promoted: Mapped[bool] = mapped_column(Boolean, default=False)
    n_embedded: Mapped[int | None] = mapped_column(Integer)
    # {"sample_ids": [...], "labels": [...], "proba": [[...], ...]}: the winner's out-of-fold probabilities
    out_of_fold: Mapped[dict[str, Any] | None] = mapped_column(JSON, deferred=True)
    trigger_key: Mapped[str | None] = mapped_column(String(250))  # e.g. the Airflow run id: retries reuse it
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    samples: Mapped[list[TrainingRunSample]] = relationship(
        back_populates="run", cascade="all, delete-orphan"
    )

    @property
    def evidence(self) -> dict[str, Any] | None:
        """What the gate decided on (cross-validation, intervals, the paired comparison, calibration)."""
        return (self.params or {}).get("evidence")

    @property
    def candidates(self) -> list[dict[str, Any]]:
        """One row per backbone the run tried: cross-validated accuracy and log loss."""
        return list((self.params or {}).get("candidates", []))


class TrainingRunSample(Base):
    """Lineage: which sample a run used, in which split, with which label."""

    __tablename__ = "training_run_samples"

    run_id: Mapped[int] = mapped_column(ForeignKey("training_runs.id", ondelete="CASCADE"), primary_key=True)
    # Indexed on its own: a sample's delete cascades here, and the primary key is led by run_id.
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id", ondelete="CASCADE"), primary_key=True, index=True)
    split: Mapped[Split] = mapped_column(_enum(Split, "lineage_split"))
    label: Mapped[str] = mapped_column(String(64))

    run: Mapped[TrainingRun] = relationship(back_populates="samples")


class Embedding(Base):
    """Cached backbone embedding of an image, keyed by content hash and backbone."""

    __tablename__ = "embeddings"
    __table_args__ = (UniqueConstraint("sha256", "backbone", name="uq_embeddings_sha256_backbone"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    backbone: Mapped[str] = mapped_column(String(64))
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class InstanceSecret(Base):
    """Secrets of this Sprout installation kept with its state (e.g. the key of the split hash)."""

    __tablename__ = "instance_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RevokedToken(Base):
    """A login token ended by a logout before its expiry; the row is useless (and pruned) once it has expired."""

    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class RecentPrediction(Base):
    """One served prediction of the bounded live-traffic window (the newest ``SPROUT_DRIFT_WINDOW`` are kept):
    what the drift report compares with the champion's training set."""

    __tablename__ = "recent_predictions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    model_version: Mapped[str | None] = mapped_column(String(32), index=True)
    backbone: Mapped[str | None] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(64))
    confidence: Mapped[float] = mapped_column(Float)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)  # float32 vector; NULL from graphs without one


class Rollout(Base):
    """A challenger judged on live traffic beside the champion: who started it, and how it ended.

    At most one is open (``open`` is True while it runs, NULL once decided: a unique index on it)."""

    __tablename__ = "rollouts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    challenger_version: Mapped[str] = mapped_column(String(32))
    champion_version: Mapped[str | None] = mapped_column(String(32))  # when it started
    mode: Mapped[RolloutMode] = mapped_column(_enum(RolloutMode, "rollout_mode"))
    started_by: Mapped[str] = mapped_column(String(64))  # "run 12", a user name, or "command line"
    run_id: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    open: Mapped[bool | None] = mapped_column(Boolean, unique=True, default=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[RolloutOutcome | None] = mapped_column(_enum(RolloutOutcome, "rollout_outcome"))
    reason: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str | None] = mapped_column(String(64))  # "rule", a user name, or "command line"


class RolloutObservation(Base):
    """One live image scored by both models during a rollout (bounded: ``SPROUT_ROLLOUT_MAX_OBSERVATIONS``).

    Paired with the reviewer's label through ``sha256`` once the image is reviewed (sent, captured, queued)."""

    __tablename__ = "rollout_observations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id", ondelete="CASCADE"), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)  # of the request's image bytes
    answered_by: Mapped[str] = mapped_column(String(16))  # "champion" or "challenger" (canary)
    champion_label: Mapped[str | None] = mapped_column(String(64))
    champion_confidence: Mapped[float | None] = mapped_column(Float)
    champion_latency_ms: Mapped[float | None] = mapped_column(Float)
    challenger_label: Mapped[str | None] = mapped_column(String(64))
    challenger_confidence: Mapped[float | None] = mapped_column(Float)
    challenger_latency_ms: Mapped[float | None] = mapped_column(Float)
    challenger_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
