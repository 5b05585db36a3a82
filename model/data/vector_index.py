"""Nearest-neighbour search over unit vectors: exact (numpy) while small, a FAISS inverted-file index once large.

``bench/ann_index.py`` measured where the switch pays (docs/benchmarks.md): below ``APPROXIMATE_FROM`` rows an
exact scan is as fast and needs no training; above it FAISS's IVF index answers in a fraction of the scan's time
and finds the same top 5 in nearly every query. Its vectors are clustered into ``4·√N`` cells by k-means (N the
switch size, so a restart at 100,000 rows trains as quickly as the switch did; fewer when the rows at the switch
are under the 39 a cell FAISS's k-means wants), each query scans the ``NPROBE``
nearest cells, and the vectors are stored as 8-bit scalars (a quarter of float32's memory). Its similarities are
approximate: a caller that applies a threshold rescores its few candidates exactly.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

APPROXIMATE_FROM = 20_000  # rows; measured by bench/ann_index.py
NPROBE = 16  # cells a query scans
TRAIN_PER_CELL = 40  # k-means training rows per cell (a sample of the rows at the switch)
MIN_TRAIN_PER_CELL = 39  # FAISS's k-means minimum (min_points_per_centroid): fewer rows, fewer cells


def normalized(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (cosine similarity is then a dot product)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _inverted_file(rows: np.ndarray, cells: int, seed: int = 0) -> Any:
    """An IVF index of ``cells`` cells with 8-bit scalar vectors, trained on (a sample of) ``rows``; inner product
    = cosine."""
    import faiss

    dim = rows.shape[1]
    sample = rows
    if len(rows) > TRAIN_PER_CELL * cells:
        sample = rows[np.random.default_rng(seed).choice(len(rows), TRAIN_PER_CELL * cells, replace=False)]
    index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, cells, faiss.ScalarQuantizer.QT_8bit,
                                          faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.train(np.ascontiguousarray(sample))
    index.nprobe = NPROBE
    return index


class VectorIndex:
    """Cosine search over ``(id, vector)`` rows; exact below ``approximate_from`` rows, an IVF index from there on
    (the exact rows train it and move into it once, when the index grows past the size). Safe to share between
    threads."""

    def __init__(self, dim: int, *, approximate_from: int = APPROXIMATE_FROM, cells: int | None = None) -> None:
        self.dim = dim
        self.approximate_from = approximate_from
        self.cells = cells or max(1, int(4 * np.sqrt(approximate_from)))
        self._lock = threading.Lock()
        self._ids = np.zeros(0, dtype=np.int64)
        self._matrix = np.zeros((0, dim), dtype=np.float32)
        self._ivf: Any = None

    def __len__(self) -> int:
        with self._lock:
            return int(self._ivf.ntotal) if self._ivf is not None else int(self._ids.size)

    @property
    def approximate(self) -> bool:
        return self._ivf is not None

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add rows (ids new; vectors of ``dim`` columns, normalised here)."""
        if len(ids) == 0:
            return
        keys = np.asarray(ids, dtype=np.int64)
        rows = np.ascontiguousarray(normalized(vectors).reshape(len(keys), self.dim))
        with self._lock:
            if self._ivf is None and self._ids.size + keys.size < self.approximate_from:
                self._matrix = np.concatenate([self._matrix, rows])
                self._ids = np.concatenate([self._ids, keys])
                return
            if self._ivf is None:  # past the size where the index pays: train it on every row so far, once
                everything, every_id = np.concatenate([self._matrix, rows]), np.concatenate([self._ids, keys])
                cells = min(self.cells, max(1, len(everything) // MIN_TRAIN_PER_CELL))
                self._ivf = _inverted_file(everything, cells)
                self._ivf.add_with_ids(everything, every_id)
                self._matrix, self._ids = np.zeros((0, self.dim), dtype=np.float32), np.zeros(0, dtype=np.int64)
                return
            self._ivf.add_with_ids(rows, keys)

    def nearest(self, vector: np.ndarray, *, k: int, min_similarity: float = -1.0) -> list[tuple[int, float]]:
        """Up to ``k`` ``(id, cosine)`` pairs, most similar first, at least ``min_similarity``."""
        query = np.ascontiguousarray(normalized(vector).reshape(1, -1))
        with self._lock:  # FAISS does not search while another thread adds
            ivf, matrix, ids = self._ivf, self._matrix, self._ids
            if ivf is not None:
                sims, keys = ivf.search(query, k)
                return [(int(key), float(sim)) for key, sim in zip(keys[0], sims[0], strict=True)
                        if key >= 0 and sim >= min_similarity]
        if ids.size == 0:
            return []
        scores = matrix @ query[0]
        top = np.argpartition(-scores, k - 1)[:k] if ids.size > k else np.arange(ids.size)
        order = top[np.argsort(-scores[top], kind="stable")]
        return [(int(ids[i]), float(scores[i])) for i in order if scores[i] >= min_similarity]

    def memory_bytes(self) -> int:
        """The vectors' bytes in memory (8-bit codes and ids once approximate; float32 rows and ids before)."""
        with self._lock:
            if self._ivf is not None:
                return int(self._ivf.ntotal * (self._ivf.code_size + 8))
            return int(self._matrix.nbytes + self._ids.nbytes)
