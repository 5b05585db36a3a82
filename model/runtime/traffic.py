"""The window of recent predictions: buffered in memory, written in batches by a background thread.

``record`` never blocks and never raises, so ``/predict`` keeps its latency whatever the database does: when
the buffer is full, or a flush fails (database down), the predictions are dropped and counted. A prediction with
a non-finite confidence or embedding is dropped alone (it would fail its whole batch on SQLite, and make the drift
report NaN on PostgreSQL). The table is shared by every API worker and survives a restart; each flush prunes it to
the newest ``keep`` rows.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from datetime import datetime

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from db import prediction_window
from db.models import utcnow
from model.core.settings import Settings
from model.serving.predictor import PredictionResult

log = logging.getLogger(__name__)
WARN_EVERY_S = 60.0


class PredictionRecorder:
    """Buffers served predictions and flushes them to ``recent_predictions`` off the request path."""

    def __init__(self, sessions: sessionmaker[Session], *, keep: int, capacity: int = 1000,
                 flush_seconds: float = 2.0, batch_size: int = 200) -> None:
        self.sessions, self.keep, self.capacity = sessions, keep, capacity
        self.flush_seconds, self.batch_size = flush_seconds, batch_size
        self.dropped = 0  # full buffer, failed flush or not finite
        self.written = 0
        self._buffer: deque[tuple[datetime, PredictionResult]] = deque()  # rows are built by the writer
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_warning = 0.0

    @classmethod
    def from_settings(cls, sessions: sessionmaker[Session], settings: Settings) -> PredictionRecorder:
        return cls(sessions, keep=settings.drift_window, capacity=settings.drift_buffer,
                   flush_seconds=settings.drift_flush_seconds)

    def record(self, result: PredictionResult) -> None:
        """Queue one prediction for the window (dropped, counted, when the buffer is full). Never raises, and does
        no more than an append: the request's thread holds the interpreter for as little as it can."""
        try:
            with self._lock:
                if len(self._buffer) >= self.capacity:
                    self.dropped += 1
                    return
                self._buffer.append((utcnow(), result))
                full = len(self._buffer) >= self.batch_size
            if full:
                self._wake.set()
        except Exception:  # recording is best effort: a prediction never fails because of it
            with self._lock:
                self.dropped += 1
            log.exception("could not buffer a prediction for the drift window")

    @property
    def pending(self) -> int:
        """Predictions buffered, not yet written."""
        return len(self._buffer)

    def flush(self) -> int:
        """Write what is buffered now and prune the table; how many rows were written (0 when it failed).
        Non-finite predictions are dropped (counted) before the write: they never fail the batch."""
        with self._flush_lock:
            with self._lock:
                batch = list(self._buffer)
                self._buffer.clear()
            rows = recordable(batch)
            if len(rows) < len(batch):
                with self._lock:
                    self.dropped += len(batch) - len(rows)
            if not rows:
                return 0
            try:
                with self.sessions() as session:
                    prediction_window.add_recent_predictions(session, rows)
                    prediction_window.prune_recent_predictions(session, keep=self.keep)
                    session.commit()
            except Exception as exc:  # database down or slow: drop, count, say so now and then
                with self._lock:
                    self.dropped += len(rows)
                now = time.monotonic()
                if now - self._last_warning > WARN_EVERY_S:
                    self._last_warning = now
                    log.warning("drift window: dropped %d predictions (%s: %s)", len(rows), type(exc).__name__,
                                exc)
                return 0
            self.written += len(rows)
            return len(rows)

    def run_forever(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self.flush()

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run_forever, name="prediction-recorder", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and write what is left (bounded by ``timeout``)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._thread is None or not self._thread.is_alive():
            self.flush()


def recordable(batch: list[tuple[datetime, PredictionResult]]) -> list[dict[str, object]]:
    """The rows of the batch's finite predictions: one bad prediction never fails the others."""
    rows = []
    for served_at, result in batch:
        try:
            if is_finite(result):
                rows.append(row(served_at, result))
        except Exception:  # not a number at all: dropped like a non-finite one
            log.exception("drift window: a prediction could not be recorded")
    return rows


def is_finite(result: PredictionResult) -> bool:
    """Whether the confidence and the embedding (when there is one) are finite numbers."""
    return math.isfinite(result.confidence) and (result.embedding is None or bool(np.isfinite(result.embedding).all()))


def row(served_at: datetime, result: PredictionResult) -> dict[str, object]:
    """The ``recent_predictions`` row of one served prediction."""
    vector = None if result.embedding is None else np.ascontiguousarray(result.embedding, np.float32).tobytes()
    return {"created_at": served_at, "model_version": result.model_version, "backbone": result.backbone,
            "label": result.label, "confidence": float(result.confidence), "embedding": vector}
