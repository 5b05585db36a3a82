"""Production capture (opt-in): keep low-confidence predictions as pending samples for review.

A privacy choice, off by default: with ``SPROUT_CAPTURE_BELOW`` set, a ``/predict`` image whose calibrated
confidence is below it (plus, optionally, a random share ``SPROUT_CAPTURE_SAMPLE_RATE`` of all) is stored as a
pending sample with ``source=capture``. The request only hands the bytes and the prediction to a bounded
queue; one background thread stores them, so capture never blocks or slows a prediction (a full queue drops
the image). Caps per hour and per day count the captures in the database, under a PostgreSQL advisory lock
held across the count and the insert, so every API worker together stays within them; the review queue's cap
(``SPROUT_MAX_PENDING_SAMPLES``) holds for captures as for uploads. An image is never captured twice (the
sample's content hash is unique).
"""

from __future__ import annotations

import logging
import queue
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from db import queries
from db.models import SampleSource, utcnow
from model.core.errors import QueueFullError, SproutError
from model.data.near_duplicates import NearDuplicateFinder
from model.data.samples import add_sample, place_in_queue, sha256_of
from model.data.storage import ObjectStore
from model.serving.predictor import PredictionResult

log = logging.getLogger(__name__)

CAPTURE_LOCK = 0x5350524F  # advisory-lock key of capture ("SPRO")
QUEUE_BYTES = 64 * 1024 * 1024  # images waiting to be stored, at most


@dataclass(frozen=True)
class CapturePolicy:
    """Which predictions are captured, and how many at most."""

    below: float | None  # calibrated confidence below which an image is captured; None: capture off
    sample_rate: float = 0.0  # and this random share of all predictions
    per_hour: int = 100
    per_day: int = 1000

    @property
    def enabled(self) -> bool:
        return self.below is not None or self.sample_rate > 0

    def wants(self, confidence: float, draw: float) -> bool:
        """Whether a prediction of this confidence is captured (``draw`` uniform in [0, 1))."""
        return (self.below is not None and confidence < self.below) or draw < self.sample_rate


class Capturer:
    """Stores offered predictions in the background, within the caps; ``on_result`` counts outcomes."""

    def __init__(self, policy: CapturePolicy, sessions: Callable[[], Session], store: ObjectStore, *,
                 near_duplicates: NearDuplicateFinder | None = None, max_pixels: int,
                 max_pending: int | None = None, on_result: Callable[[str], None] = lambda _result: None,
                 queue_size: int = 64) -> None:
        self.policy, self.sessions, self.store = policy, sessions, store
        self.near_duplicates, self.max_pixels, self.on_result = near_duplicates, max_pixels, on_result
        self.max_pending = max_pending  # the review queue's cap, shared with uploads
        self._queue: queue.Queue[tuple[bytes, PredictionResult] | None] = queue.Queue(queue_size)
        self._bytes = 0
        self._bytes_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._random = random.Random()
        self._serial = threading.Lock()  # one capture at a time in this process (SQLite has no advisory lock)

    def start(self) -> None:
        if self.policy.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sprout-capture", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Store what is queued (within ``timeout``), then stop."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def offer(self, data: bytes, result: PredictionResult) -> bool:
        """Queue a prediction for capture if the policy wants it; never blocks. True when queued."""
        if self._thread is None or not self.policy.wants(result.confidence, self._random.random()):
            return False
        with self._bytes_lock:
            if self._bytes + len(data) > QUEUE_BYTES:
                self.on_result("dropped")
                return False
            self._bytes += len(data)
        try:
            self._queue.put_nowait((data, result))
        except queue.Full:
            self._release(len(data))
            self.on_result("dropped")
            return False
        return True

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until every queued image is handled (tests, shutdown)."""
        done = threading.Event()

        def wait() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        done.wait(timeout)

    def _release(self, size: int) -> None:
        with self._bytes_lock:
            self._bytes -= size

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            data, result = item
            try:
                self.on_result(self.capture(data, result))
            except Exception as exc:  # storage or database down: this image is not kept, the next may be
                log.warning("capture failed: %s", exc)
                self.on_result("error")
            finally:
                self._release(len(data))
                self._queue.task_done()
        self._queue.task_done()

    def capture(self, data: bytes, result: PredictionResult) -> str:
        """Store one image as a pending capture unless a cap is reached: ``stored``, ``duplicate``, ``capped`` (the
        hourly or daily cap), ``queue_full`` (the review queue's cap) or ``refused`` (not an image we keep)."""
        sha = sha256_of(data)
        with self._serial, self.sessions() as lock_session, self.sessions() as session:
            if queries.get_sample_by_sha(session, sha256=sha) is not None:
                return "duplicate"  # known already: no decode, no lock
            queries.hold_lock(lock_session, key=CAPTURE_LOCK)  # until lock_session's transaction ends
            now = utcnow()
            if (queries.count_captures_since(session, since=now - timedelta(hours=1)) >= self.policy.per_hour
                    or queries.count_captures_since(session, since=now - timedelta(days=1)) >= self.policy.per_day):
                return "capped"
            try:
                with place_in_queue(session, self.max_pending):
                    _, created = add_sample(session, self.store, data=data, source=SampleSource.CAPTURE,
                                            prediction=result.as_prediction(), max_pixels=self.max_pixels,
                                            near_duplicates=self.near_duplicates)
            except QueueFullError:
                return "queue_full"
            except SproutError as exc:
                log.info("capture refused: %s", exc)
                return "refused"
            return "stored" if created else "duplicate"
