"""The vector index: exact below its switch size, FAISS's IVF index above it — the same nearest rows for copies and
near-copies, ids kept across the switch; and the novelty score read from it (the nearest training row's distance,
a lower bound when none of the nearest was trained on)."""

from __future__ import annotations

import numpy as np
import pytest

from model.data.novelty import novelty_of
from model.data.vector_index import VectorIndex, normalized

DIM = 64


def clustered(n: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    return normalized(centres[rng.integers(0, len(centres), n)] + 0.3 * rng.standard_normal((n, DIM)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_index_switches_to_ivf_and_still_finds_near_copies(seed: int) -> None:
    rng = np.random.default_rng(seed)
    centres = normalized(rng.standard_normal((12, DIM)))
    data = clustered(3000, rng, centres)
    ids = np.arange(1000, 4000, dtype=np.int64)  # sample ids, not row numbers
    index = VectorIndex(DIM, approximate_from=2000, cells=40)
    index.add(ids[:1500], data[:1500])
    assert not index.approximate and len(index) == 1500
    copies = data[:1500][rng.choice(1500, 50, replace=False)]
    exact_before = [index.nearest(c + 0.01 * rng.standard_normal(DIM), k=1)[0][0] for c in copies]
    index.add(ids[1500:], data[1500:])  # past the switch: the exact rows move into the trained IVF index
    assert index.approximate and len(index) == 3000
    for row, found in zip(copies, exact_before, strict=True):
        [(best, similarity)] = index.nearest(row, k=1)
        assert best == found and similarity > 0.97
    later = data[2500 + rng.integers(0, 500)]  # a row added after the switch
    assert index.nearest(later, k=1)[0][0] in set(ids[1500:].tolist())
    assert index.nearest(later, k=5, min_similarity=2.0) == []
    assert index.memory_bytes() < data.nbytes  # 8-bit codes


def test_exact_search_orders_by_cosine_and_respects_the_floor() -> None:
    index = VectorIndex(3)
    index.add(np.array([7, 8, 9]), np.array([[1.0, 0, 0], [0.8, 0.6, 0], [0, 1.0, 0]]))
    assert [i for i, _ in index.nearest(np.array([1.0, 0.1, 0]), k=3)] == [7, 8, 9]
    assert [i for i, _ in index.nearest(np.array([1.0, 0, 0]), k=3, min_similarity=0.5)] == [7, 8]
    assert VectorIndex(3).nearest(np.ones(3), k=2) == []


def test_novelty_is_the_distance_to_the_nearest_training_row() -> None:
    rows = [(11, 0.99), (12, 0.9), (13, 0.7)]  # 11 pending, 12 trained on

    def nearest(_vector: np.ndarray, *, k: int) -> list[tuple[int, float]]:
        return rows[:k]

    query = np.ones(4)
    assert novelty_of(nearest, query, frozenset({12, 13})) == pytest.approx(0.1)
    assert novelty_of(nearest, query, frozenset({99})) == pytest.approx(0.3)  # none trained on: a lower bound
    assert novelty_of(lambda v, *, k: [], query, frozenset({1})) == 1.0


def test_the_ivf_index_has_no_more_cells_than_its_rows_can_train() -> None:
    """FAISS's k-means wants 39 rows a cell; at the switch the index has only the rows seen so far (the product's
    4·√20,000 = 565 cells would want 22,035 and the API's sync reached 20,480)."""
    rng = np.random.default_rng(3)
    data = clustered(2100, rng, normalized(rng.standard_normal((12, DIM))))
    index = VectorIndex(DIM, approximate_from=2000, cells=100)
    index.add(np.arange(2100), data)
    assert index.approximate and index._ivf.nlist == 2100 // 39
    assert index.nearest(data[7], k=1)[0][0] == 7
