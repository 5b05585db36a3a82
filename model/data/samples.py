"""Sample use cases: add (upload or import), submit, look up, and where a sample's object lives for each status
(a reviewer's decisions move it: ``model.review.actions``)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from PIL import Image
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db import queries
from db.models import (
    Embedding,
    Sample,
    SampleSource,
    SampleStatus,
    Split,
    contradiction_of,
    uncertainty_tier_of,
    utcnow,
)
from model.core.errors import NotFoundError, QueueFullError, SproutError
from model.data.images import DEFAULT_MAX_PIXELS, DecodedImage, decode_image, sniff
from model.data.metadata import strip_metadata
from model.data.near_duplicates import NearDuplicate, NearDuplicateFinder, group_of, phash_of
from model.data.storage import ObjectStore, check_label, labeled_key, pending_key, rejected_key

log = logging.getLogger(__name__)

# Train/val/test split of a new sample (≈ 80/10/10) from a keyed hash of its content. The key is a secret of the
# installation (``instance_secrets.split_key``, made by migration 0003), so an uploader cannot pick test-set
# membership by appending bytes to an image. A sample's split is stored when it is added and never changes, so
# the test set is stable and only ever grows.
SPLIT_KEY = "split_key"
PENDING_CAP_LOCK = 0x53505250  # advisory-lock key of the review-queue cap's last places ("SPRP")
CAP_SLACK = 256  # from this many places before the cap on, uploads take turns (_last_places)
CAP_WAIT_SECONDS = 30.0  # an upload waiting longer for its turn there is told to come back (429)
_CAP_SERIAL = threading.Lock()


def split_for(sha256: str, *, key: str) -> Split:
    """Bucket HMAC-SHA256(key, sha256) into train (0-7), val (8) or test (9) by its first 8 hex digits mod 10."""
    digest = hmac.new(key.encode(), sha256.encode(), hashlib.sha256).hexdigest()
    bucket = int(digest[:8], 16) % 10
    if bucket == 9:
        return Split.TEST
    if bucket == 8:
        return Split.VAL
    return Split.TRAIN


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def split_key(session: Session) -> str:
    """The installation's split key (a migration creates it)."""
    key = queries.instance_secret(session, name=SPLIT_KEY)
    if key is None:
        raise SproutError("The database has no split key: run `sprout db upgrade`.")
    return key


def key_for(*, status: SampleStatus, sha256: str, ext: str, label: str | None) -> str:
    """Where a sample's object lives for a given status."""
    if status is SampleStatus.APPROVED:
        assert label is not None
        return labeled_key(label, sha256, ext)
    if status is SampleStatus.REJECTED:
        return rejected_key(sha256, ext)
    return pending_key(sha256, ext)


def ext_of_key(key: str) -> str:
    return key.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class Prediction:
    """A model's answer attached to a sample at submission time, with the embedding of the same pass
    (``unfamiliar``: the image looked like nothing the model was trained on; the review queue shows it first)."""

    label: str
    confidence: float
    model_version: str | None
    embedding: np.ndarray | None = field(default=None, repr=False, compare=False)
    backbone: str | None = None
    unfamiliar: bool = False


def add_sample(
    session: Session,
    store: ObjectStore,
    *,
    data: bytes,
    source: SampleSource,
    label: str | None = None,
    suggested_label: str | None = None,
    prediction: Prediction | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    near_duplicates: NearDuplicateFinder | None = None,
    image: Image.Image | None = None,
) -> tuple[Sample, bool]:
    """Store an image and record it; returns ``(sample, created)``.

    With ``label`` the sample is approved at once (imports); otherwise it waits in ``pending/``.
    An exact duplicate (same sha256 of the uploaded bytes) returns the existing sample and stores nothing.
    What is stored is the image without its metadata (``strip_metadata``); ``sha256`` stays that of the upload.
    A prediction's embedding is cached (training never embeds the image again) and, with ``near_duplicates``,
    links the sample to the samples it nearly duplicates: it joins the best match's group and takes its split,
    so a copy of a test image never lands in training. ``image``: the picture already decoded from ``data``
    (by the model that predicted it), so it is not decoded twice.
    """
    info = sniff(data, max_pixels=max_pixels)
    if image is None:
        image = decode_image(data, max_pixels=max_pixels, min_side=256)  # refuse corrupt files before storing
    phash = phash_of(image)
    del image
    label = check_label(label) if label is not None else None
    suggested_label = check_label(suggested_label) if suggested_label else None
    sha = sha256_of(data)
    existing = queries.get_sample_by_sha(session, sha256=sha)
    if existing is not None:
        return existing, False
    status = SampleStatus.APPROVED if label is not None else SampleStatus.PENDING
    split = split_for(sha, key=split_key(session))
    embedding = _embedding_row(session, sha, prediction)
    matches, best = _near_duplicates_of(session, near_duplicates, embedding, phash)
    novelty = _novelty(session, near_duplicates, embedding, prediction)
    if best is not None:
        split = best.split
    session.commit()  # end the read transaction: no database connection is held while the image is stripped
    stored = strip_metadata(data, info)  # no EXIF/GPS, XMP, comments or trailing bytes reach the store
    key = key_for(status=status, sha256=sha, ext=stored.ext, label=label)
    store.put(key, stored.data, stored.content_type)
    now = utcnow()
    # a non-finite confidence is no confidence: the review orders' keys stay comparable (the uncertainty tiers
    # without a confidence are the even ones, db.sample_pages)
    confidence = prediction.confidence if prediction and math.isfinite(prediction.confidence) else None
    sample = Sample(
        sha256=sha,
        object_key=key,
        content_type=stored.content_type,
        size_bytes=len(stored.data),
        stored_sha256=sha256_of(stored.data),
        status=status,
        label=label,
        suggested_label=suggested_label,
        predicted_label=prediction.label if prediction else None,
        confidence=confidence,
        predicted_by_version=prediction.model_version if prediction else None,
        predicted_unfamiliar=prediction.unfamiliar if prediction else None,
        novelty=-1.0 if novelty is None else novelty,
        uncertainty_tier=uncertainty_tier_of(prediction.unfamiliar if prediction else None, confidence),
        contradiction=contradiction_of(suggested_label, prediction.label if prediction else None, confidence),
        source=source,
        split=split,
        created_at=now,
        approved_at=now if status is SampleStatus.APPROVED else None,
        phash=phash,
        near_duplicates=[m.to_dict() for m in matches] or None,
        duplicate_group=group_of(best) if best is not None else None,
    )
    session.add(sample)
    try:  # the same image stored meanwhile (another API process): already at the update, which flushes the insert
        if best is not None and best.duplicate_group is None:
            queries.set_duplicate_group(session, sample_id=best.id, group=best.id)
        if embedding is not None:
            session.add(embedding)
        session.commit()
    except IntegrityError:
        session.rollback()
        existing = queries.get_sample_by_sha(session, sha256=sha)
        if existing is None:
            raise
        return existing, False
    return sample, True


def _embedding_row(session: Session, sha: str, prediction: Prediction | None) -> Embedding | None:
    """The cache row of the embedding a prediction computed (None without one)."""
    if prediction is None or prediction.embedding is None or not prediction.backbone:
        return None
    if queries.cached_embeddings(session, backbone=prediction.backbone, hashes=[sha]):
        return None
    vector = np.ascontiguousarray(prediction.embedding, dtype=np.float32)
    return Embedding(sha256=sha, backbone=prediction.backbone, dim=vector.size, vector=vector.tobytes())


def _near_duplicates_of(session: Session, finder: NearDuplicateFinder | None, embedding: Embedding | None,
                        phash: str) -> tuple[list[NearDuplicate], Sample | None]:
    """The near-duplicates of a new image and the best match's row (``[], None`` without a finder)."""
    if finder is None or embedding is None:
        return [], None
    vector = np.frombuffer(embedding.vector, dtype=np.float32)
    matches = finder.find(session, backbone=embedding.backbone, embedding=vector, phash=phash)
    return matches, (queries.find_sample(session, sample_id=matches[0].id) if matches else None)


def _novelty(session: Session, finder: NearDuplicateFinder | None, embedding: Embedding | None,
             prediction: Prediction | None) -> float | None:
    """How far the image lies from what the predicting version trained on (None without a finder or embedding)."""
    if finder is None or embedding is None or prediction is None:
        return None
    return finder.novelty(session, backbone=embedding.backbone, version=prediction.model_version,
                          embedding=np.frombuffer(embedding.vector, dtype=np.float32))


def get_sample(session: Session, sample_id: int) -> Sample:
    """The sample with this id, or NotFoundError."""
    sample = queries.find_sample(session, sample_id=sample_id)
    if sample is None:
        raise NotFoundError(f"Sample {sample_id} not found.")
    return sample


class ImageModel(Protocol):
    """What a submission needs of the serving model: one decode, and a prediction from it."""

    def decode(self, data: bytes) -> DecodedImage: ...

    def prediction_of(self, decoded: DecodedImage) -> Prediction: ...


def submit_sample(
    session: Session,
    store: ObjectStore,
    *,
    data: bytes,
    source: SampleSource,
    suggested_label: str | None = None,
    model: ImageModel | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_pending: int | None = None,
    near_duplicates: NearDuplicateFinder | None = None,
) -> tuple[Sample, bool]:
    """A user's upload: record the champion's prediction (when there is one) and store it as pending.

    The image is decoded once, by the model, and that picture also checks and hashes it.
    QueueFullError once ``max_pending`` samples wait for review (a duplicate is still answered).
    """
    existing = queries.get_sample_by_sha(session, sha256=sha256_of(data))
    if existing is not None:
        return existing, False
    pending = _pending_within_cap(session, max_pending)  # before the model's work
    prediction, image = None, None
    if model is not None:
        decoded = model.decode(data)
        prediction, image = model.prediction_of(decoded), decoded.image
    with _last_places(session, pending, max_pending):
        return add_sample(session, store, data=data, source=source, suggested_label=suggested_label,
                          prediction=prediction, max_pixels=max_pixels, near_duplicates=near_duplicates, image=image)


@contextlib.contextmanager
def place_in_queue(session: Session, max_pending: int | None) -> Iterator[None]:
    """A place in the review queue for one new pending sample, inserted inside: QueueFullError when it is full
    (``max_pending`` None: no cap). Shared with production capture, so the cap holds whatever fills the queue."""
    with _last_places(session, _pending_within_cap(session, max_pending), max_pending):
        yield


def _pending_within_cap(session: Session, max_pending: int | None) -> int:
    """The pending count (0 when there is no cap); QueueFullError at the cap."""
    if max_pending is None:
        return 0
    pending = queries.count_samples(session, status=SampleStatus.PENDING)
    _refuse_if_full(pending, max_pending)
    return pending


def _refuse_if_full(pending: int, max_pending: int | None) -> None:
    if max_pending is not None and pending >= max_pending:
        raise QueueFullError(f"The review queue is full ({max_pending} images wait for a reviewer); "
                             "try again later.")


@contextlib.contextmanager
def _last_places(session: Session, pending: int, max_pending: int | None) -> Iterator[None]:
    """Within ``CAP_SLACK`` of the cap, one upload at a time counts again and inserts (a thread lock in this
    process, an advisory lock across API processes on PostgreSQL, held by a session of its own while ``session``
    commits): racing uploads cannot overfill the queue. Further from it, no lock: that many uploads are never in
    flight at once."""
    if max_pending is None or pending < max_pending - CAP_SLACK:
        yield
        return
    session.commit()  # wait holding no connection (the one in turn needs two); a fresh snapshot for the count
    if not _CAP_SERIAL.acquire(timeout=CAP_WAIT_SECONDS):
        raise QueueFullError("The review queue is nearly full and busy; try again shortly.")
    try:
        with Session(bind=session.get_bind()) as lock_session:
            queries.hold_lock(lock_session, key=PENDING_CAP_LOCK)  # until lock_session's transaction ends
            _refuse_if_full(queries.count_samples(session, status=SampleStatus.PENDING), max_pending)
            yield
    finally:
        _CAP_SERIAL.release()
