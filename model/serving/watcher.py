"""A registry alias's model for a long-running server — the champion, and during a rollout the challenger —:
loaded at start, re-checked every few seconds.

A newly aliased version is loaded beside the old one and swapped in with one assignment, so no request fails
during the swap. Framework-free: the API starts ``ModelWatcher.run_forever`` as a thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from model.core.errors import ArtifactRejectedError, NoChampionError
from model.data.images import DEFAULT_MAX_PIXELS
from model.serving.predictor import Predictor
from model.serving.registry import CHAMPION, Registry

log = logging.getLogger(__name__)


class ModelWatcher:
    """Holds the Predictor of the version a registry alias points at, and follows the alias."""

    def __init__(self, registry: Registry, *, poll_seconds: float, threads: int = 1,
                 max_pixels: int = DEFAULT_MAX_PIXELS, verify: Callable[[str, Path], None] | None = None,
                 on_reject: Callable[[str, str], None] | None = None,
                 slots: threading.BoundedSemaphore | None = None, alias: str = CHAMPION) -> None:
        """``verify(version, path)`` raises ArtifactRejectedError for an artifact that must not be served;
        ``on_reject(version, reason)`` is told once per rejected version (e.g. to count it in a metric);
        ``slots``: at most this many decodes and graph runs at once, shared by every model the process serves.
        The champion is kept when its alias disappears (serve what we have); any other alias's model is dropped."""
        self.registry = registry
        self.alias = alias
        self.verify = verify
        self.on_reject = on_reject
        self.rejected: dict[str, str] = {}
        self.max_pixels = max_pixels
        self.poll_seconds = poll_seconds
        self.threads = threads
        self.slots = slots
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
        """Load the aliased version if it changed; True when the served model changed (a challenger's alias
        removed drops its model)."""
        with self._refresh_lock:
            try:
                aliased = self.registry.aliased(self.alias)
                if aliased is None and self.alias != CHAMPION and self._predictor is not None:
                    log.info("the %s alias points nowhere now: version %s unloaded", self.alias, self.version)
                    self._predictor, self.last_error = None, None
                    return True
                if aliased is None or aliased.version == self.version:
                    self.last_error = None
                    return False
                info, path = self.registry.model_file(aliased.version)
                if self.verify is not None:
                    self.verify(info.version, path)
                predictor = Predictor.load(path, version=info.version, threads=self.threads,
                                           max_pixels=self.max_pixels, slots=self.slots)
            except ArtifactRejectedError as exc:  # keep serving the current model; say why, once per version
                self.last_error = str(exc)
                version = info.version
                if version not in self.rejected:
                    self.rejected[version] = str(exc)
                    log.error("not serving model version %s: %s", version, exc)
                    if self.on_reject is not None:
                        self.on_reject(version, str(exc))
                return False
            except Exception as exc:  # registry or artifact store down: keep serving what we have
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("could not refresh the %s model: %s", self.alias, self.last_error)
                return False
            previous, self._predictor = self.version, predictor
            self.last_error = None
            log.info("%s: serving model version %s (was %s)", self.alias, predictor.version, previous)
            return True

    def run_forever(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.refresh()

    def start(self) -> threading.Thread:
        self.refresh()
        thread = threading.Thread(target=self.run_forever, name=f"{self.alias}-watcher", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
