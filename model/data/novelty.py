"""Novelty: how far a new image lies from everything the model that predicted it was trained on — ``1 - best
cosine`` of its embedding to that run's train+val embeddings — computed once, when the image is submitted, and
kept with the sample (``samples.novelty``), so the review queue's ``novelty`` order is a database sort.

The search is the near-duplicate index's (every sample of the backbone): the nearest ``NOVELTY_K`` rows, of which
the first that the run trained on gives the score. When none of them did (an image among many newer ones), the
score is the distance to the k-th nearest: a lower bound, exact where it matters — near the training set.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
from sqlalchemy.orm import Session

from db import queries

NOVELTY_K = 32
Nearest = Callable[..., list[tuple[int, float]]]


class TrainingSets:
    """The train+val sample ids of each registered version's run, read once per version (they never change)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_version: dict[tuple[str, str], frozenset[int]] = {}

    def of_version(self, session: Session, version: str | None, *, backbone: str) -> frozenset[int]:
        """The ids (empty: no such version, or its run used another backbone)."""
        if version is None:
            return frozenset()
        key = (version, backbone)
        with self._lock:
            if key in self._by_version:
                return self._by_version[key]
        run = queries.get_run_by_version(session, version=version)
        ids = (frozenset(queries.training_sample_ids(session, run_id=run.id))
               if run is not None and run.backbone == backbone else frozenset())
        with self._lock:
            self._by_version[key] = ids
        return ids


def novelty_of(nearest: Nearest, embedding: np.ndarray, training: frozenset[int], *, k: int = NOVELTY_K) -> float:
    """``1 - best cosine`` to the ``training`` ids among the ``k`` nearest rows ``nearest`` finds (the k-th's
    distance, a lower bound, when none of them is a training row; 1.0 with an empty index)."""
    close = nearest(embedding, k=k)
    for sample_id, similarity in close:
        if sample_id in training:
            return float(max(0.0, 1.0 - similarity))
    return float(max(0.0, 1.0 - close[-1][1])) if close else 1.0
