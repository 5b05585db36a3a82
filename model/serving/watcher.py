"""The champion model for a long-running server: loaded at start, re-checked every few seconds.

A newly promoted version is loaded beside the old one and swapped in with one assignment, so no
request fails during the swap. Framework-free: the API starts ``ChampionWatcher.run_forever`` as a thread.
"""

from __future__ import annotations

import logging
import threading

from model.core.errors import NoChampionError
from model.data.images import DEFAULT_MAX_PIXELS
from model.serving.predictor import Predictor
from model.serving.registry import Registry

log = logging.getLogger(__name__)


class ChampionWatcher:
    """Holds the current champion Predictor and follows the registry's ``champion`` alias."""

    def __init__(self, registry: Registry, *, poll_seconds: float, threads: int = 1,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.registry = registry
        self.max_pixels = max_pixels
        self.poll_seconds = poll_seconds
        self.threads = threads
        self._predictor: Predictor | None = None
        self._stop = threading.Event()
        self._refresh_lock = threading.Lock()
        self.last_error: str | None = None

    @property
    def predictor(self) -> Predictor:
        current = self._predictor
        if current is None:
            raise NoChampionError("No model has been promoted yet; try again after the first training run.")
        return current

    @property
    def current(self) -> Predictor | None:
        """The served predictor, or None before the first promotion."""
        return self._predictor

    @property
    def version(self) -> str | None:
        current = self._predictor
        return current.version if current else None

    def refresh(self) -> bool:
        """Load the champion if it changed; True when a new model was swapped in."""
        with self._refresh_lock:
            try:
                champion = self.registry.champion()
                if champion is None or champion.version == self.version:
                    self.last_error = None
                    return False
                predictor = self.registry.load_predictor(champion.version, threads=self.threads,
                                                         max_pixels=self.max_pixels)
            except Exception as exc:  # registry or artifact store down: keep serving what we have
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("could not refresh the champion model: %s", self.last_error)
                return False
            previous, self._predictor = self.version, predictor
            self.last_error = None
            log.info("serving model version %s (was %s)", predictor.version, previous)
            return True

    def run_forever(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.refresh()

    def start(self) -> threading.Thread:
        self.refresh()
        thread = threading.Thread(target=self.run_forever, name="champion-watcher", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
