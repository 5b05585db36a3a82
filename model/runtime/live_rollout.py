"""A rollout as one API process serves it: the challenger beside the champion, which requests it scores in shadow
or answers as a canary, and the observations it records off the response path.

Every process follows the open ``rollouts`` row (its mode and challenger version) and the registry's
``challenger`` alias, so replicas agree without talking to each other. A request never waits for the other model:
its image goes to a bounded queue (dropped and counted when full), a thread scores it there, and the pairs are
written in batches to ``rollout_observations`` (capped per rollout), where ``sprout rollout judge`` reads them.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from db import rollouts
from db.models import RolloutMode, utcnow
from model.core.errors import SproutError
from model.serving.predictor import PredictionResult, Predictor
from model.serving.watcher import ModelWatcher

log = logging.getLogger(__name__)
CHAMPION, CHALLENGER = "champion", "challenger"
CLIENT_HEADER = "X-Sprout-Client"  # a canary's stickiness key: the same value, the same model version
WARN_EVERY_S = 60.0


@dataclass(frozen=True)
class OpenRollout:
    """The open rollout as the API needs it."""

    id: int
    mode: RolloutMode
    challenger_version: str


@dataclass(frozen=True)
class Served:
    """One image's answer on the request path: by which model, what, and how long it took."""

    data: bytes
    sha256: str
    answered_by: str  # CHAMPION or CHALLENGER
    result: PredictionResult
    latency_ms: float


@dataclass(frozen=True)
class _Job:
    rollout_id: int
    served: Served
    other: Predictor  # the model that did not answer: scored here, off the request path


def client_bucket(rollout_id: int, key: str) -> float:
    """Where a client key falls in [0, 1) for this rollout: the same key, the same version, for the whole rollout
    (a new rollout reshuffles, so the same clients are not always the canaries)."""
    digest = hashlib.sha256(f"{rollout_id}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def timed(predict: Callable[[bytes], PredictionResult], data: bytes) -> tuple[PredictionResult, float]:
    """The result and its latency in milliseconds."""
    start = time.perf_counter()
    result = predict(data)
    return result, (time.perf_counter() - start) * 1000


class LiveRollout:
    """The challenger's side of one API process during a rollout (inactive, and free, when there is none)."""

    def __init__(self, challenger: ModelWatcher, sessions: sessionmaker[Session], *, shadow_share: float,
                 canary_share: float, queue_size: int, max_observations: int, flush_seconds: float = 1.0,
                 batch_size: int = 100, on_scored: Callable[[str, str], None] | None = None,
                 on_answer: Callable[[str], None] | None = None) -> None:
        """``on_scored(mode, outcome)`` counts each image scored off the request path (outcome "agree",
        "disagree", "error" or "dropped"); ``on_answer(model)`` each canary-rollout answer by the model that gave
        it."""
        self.challenger, self.sessions = challenger, sessions
        self.shadow_share, self.canary_share = shadow_share, canary_share
        self.max_observations, self.flush_seconds, self.batch_size = max_observations, flush_seconds, batch_size
        self.on_scored = on_scored or (lambda _mode, _outcome: None)
        self.on_answer = on_answer or (lambda _model: None)
        self.dropped = self.written = self.failed = 0
        self._open: OpenRollout | None = None
        self._jobs: queue.Queue[_Job] = queue.Queue(maxsize=queue_size)
        self._rows: list[dict[str, Any]] = []
        self._full: set[int] = set()  # rollouts whose observations reached the cap (no more counting)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._random = random.Random()
        self._last_warning = 0.0

    # --- what the request path asks (cheap, never blocks, never raises) ---

    @property
    def open(self) -> OpenRollout | None:
        """The open rollout as this process last read it (every poll), whether or not its challenger is loaded."""
        return self._open

    def active(self) -> tuple[OpenRollout, Predictor] | None:
        """The open rollout and its challenger, when this process has loaded the version the rollout names."""
        current, predictor = self._open, self.challenger.current
        if current is None or predictor is None or predictor.version != current.challenger_version:
            return None
        return current, predictor

    def canary(self, key: str) -> Predictor | None:
        """The challenger when a canary rollout routes this client key to it; else None (the champion answers)."""
        live = self.active()
        if live is None or live[0].mode is not RolloutMode.CANARY:
            return None
        return live[1] if client_bucket(live[0].id, key) < self.canary_share else None

    def predict(self, champion: Predictor, data: bytes, client_key: str | None = None) -> PredictionResult:
        """Answer one image on the request path: the champion, or the challenger for a canary's client key (the
        key: ``client_key``, else the image's hash); the other model scores it later, off this path. A challenger
        that fails on an image the champion can read is answered by the champion, and the failure recorded.
        Without a rollout this is ``champion.predict_bytes(data)`` and nothing more."""
        live = self.active()
        if live is None:
            return champion.predict_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        canary = self.canary(client_key or sha)
        if canary is not None:
            try:
                result, ms = timed(canary.predict_bytes, data)
            except SproutError:
                raise  # the image itself is bad: the champion would refuse it too
            except Exception:
                log.exception("the challenger failed on a canary request; the champion answers")
            else:
                self.on_answer(CHALLENGER)
                self.observe(Served(data, sha, CHALLENGER, result, ms), champion)
                return result
            result, ms = timed(champion.predict_bytes, data)
            self.observe(Served(data, sha, CHAMPION, result, ms), champion, always=True)
        else:
            result, ms = timed(champion.predict_bytes, data)
            self.observe(Served(data, sha, CHAMPION, result, ms), champion)
        if live[0].mode is RolloutMode.CANARY:
            self.on_answer(CHAMPION)
        return result

    def choose(self, champion: Predictor, client_key: Callable[[], str]) -> tuple[Predictor, str]:
        """The model that answers a whole request (``/v2`` batches) and its role: the challenger for a canary's
        client key, else the champion. ``client_key`` is only called during a canary rollout."""
        live = self.active()
        if live is None or live[0].mode is not RolloutMode.CANARY:
            return champion, CHAMPION
        canary = self.canary(client_key())
        self.on_answer(CHALLENGER if canary is not None else CHAMPION)
        return (canary, CHALLENGER) if canary is not None else (champion, CHAMPION)

    def observe_many(self, images: list[bytes], results: list[PredictionResult], answered_by: str,
                     latency_ms: float, champion: Predictor) -> None:
        """``observe`` each encoded image of an answered batch (``latency_ms``: the batch's, per image)."""
        if self.active() is None:
            return
        for data, result in zip(images, results, strict=True):
            self.observe(Served(data, hashlib.sha256(data).hexdigest(), answered_by, result, latency_ms), champion)

    def observe(self, served: Served, champion: Predictor, *, always: bool = False) -> None:
        """Hand an answered image to the background scorer: the challenger scores it in shadow (for a share of
        requests; ``always``: this one), the champion scores a canary's answer. Dropped and counted when the queue
        is full."""
        live = self.active()
        if live is None:
            return
        rollout, challenger = live
        if served.answered_by == CHAMPION:
            sampled = rollout.mode is RolloutMode.SHADOW and self._random.random() < self.shadow_share
            if not (sampled or always):
                return
            other = challenger
        else:
            other = champion
        try:
            self._jobs.put_nowait(_Job(rollout.id, served, other))
        except queue.Full:
            with self._lock:
                self.dropped += 1
            self.on_scored(rollout.mode.value, "dropped")

    # --- the background side ---

    def refresh(self) -> None:
        """Read the open rollout (every poll: all replicas follow the same row)."""
        try:
            with self.sessions() as session:
                row = rollouts.open_rollout(session)
                self._open = None if row is None else OpenRollout(row.id, row.mode, row.challenger_version)
        except Exception as exc:  # database down: keep what we knew
            self._warn("could not read the open rollout", exc)

    def score(self, job: _Job) -> dict[str, Any]:
        """The observation row of one job: the other model's answer (or its error) beside the served one."""
        served, other_result, other_ms, error = job.served, None, None, None
        try:
            other_result, other_ms = timed(job.other.predict_bytes, served.data)
        except Exception as exc:  # a failing model is evidence, not a crash
            error = f"{type(exc).__name__}: {exc}"[:200]
        by_champion = served.answered_by == CHAMPION
        champion = (served.result, served.latency_ms) if by_champion else (other_result, other_ms)
        challenger = (other_result, other_ms) if by_champion else (served.result, served.latency_ms)
        mode = RolloutMode.SHADOW.value if by_champion else RolloutMode.CANARY.value
        if error is not None:
            self.on_scored(mode, "error")
        elif champion[0] is not None and challenger[0] is not None:
            self.on_scored(mode, "agree" if champion[0].label == challenger[0].label else "disagree")
        return {"rollout_id": job.rollout_id, "sha256": served.sha256, "answered_by": served.answered_by,
                "champion_label": champion[0].label if champion[0] else None,
                "champion_confidence": float(champion[0].confidence) if champion[0] else None,
                "champion_latency_ms": champion[1],
                "challenger_label": challenger[0].label if challenger[0] else None,
                "challenger_confidence": float(challenger[0].confidence) if challenger[0] else None,
                "challenger_latency_ms": challenger[1], "challenger_error": error if by_champion else None,
                "created_at": utcnow()}

    def flush(self) -> int:
        """Write the scored rows, up to each rollout's cap: the rows already stored by every replica are counted in
        the same transaction as the insert, under a lock all writers take; how many were written."""
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return 0
        try:
            with self.sessions() as session:
                kept: list[dict[str, Any]] = []
                room: dict[int, int] = {}  # what each rollout may still keep
                for row in rows:
                    rid = row["rollout_id"]
                    if rid in self._full:
                        continue
                    if rid not in room:
                        room[rid] = rollouts.room_for_observations(session, rid, self.max_observations)
                    if room[rid] > 0:
                        room[rid] -= 1
                        kept.append(row)
                rollouts.add_observations(session, kept)
                session.commit()
        except Exception as exc:
            with self._lock:
                self.failed += len(rows)
            self._warn(f"dropped {len(rows)} rollout observations", exc)
            return 0
        self._full.update(rid for rid, left in room.items() if left == 0)
        self.written += len(kept)
        return len(kept)

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                job = self._jobs.get(timeout=0.2)
            except queue.Empty:
                continue
            row = self.score(job)
            with self._lock:
                self._rows.append(row)
            self._jobs.task_done()

    def _flush_forever(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()

    def _poll_forever(self, seconds: float) -> None:
        while not self._stop.wait(seconds):
            self.refresh()

    def start(self, poll_seconds: float) -> None:
        """Read the open rollout now, then keep following it; start the scorer and the writer."""
        self.refresh()
        for target, name, args in ((self._poll_forever, "rollout-poll", (poll_seconds,)),
                                   (self._work, "rollout-scorer", ()), (self._flush_forever, "rollout-writer", ())):
            thread = threading.Thread(target=target, args=args, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self.flush()

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until every queued image is scored and written (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while (self._jobs.unfinished_tasks or self._rows) and time.monotonic() < deadline:
            time.sleep(0.05)
            self.flush()

    def _warn(self, what: str, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_warning > WARN_EVERY_S:
            self._last_warning = now
            log.warning("rollout: %s (%s: %s)", what, type(exc).__name__, exc)
