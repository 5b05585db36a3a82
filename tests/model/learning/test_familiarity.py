"""model.learning.familiarity: the unfamiliarity score (cosine distance to the nearest label centroid) and its
threshold fitted on held-out in-domain samples."""

from __future__ import annotations

import numpy as np
import pytest

from model.learning.familiarity import centroids, fit_familiarity, held_out_distances, unfamiliarity


def clusters(rng: np.random.Generator, centers: np.ndarray, n: int, spread: float) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points around each center (non-negative, as pooled CNN features are), labelled by center."""
    y = np.repeat(np.arange(len(centers)), n)
    x = np.abs(centers[y] + rng.normal(0, spread, (len(y), centers.shape[1])))
    return x.astype(np.float32), y


def test_unfamiliarity_is_the_cosine_distance_to_the_nearest_centroid() -> None:
    reference = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    queries = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 5.0], [1.0, 1.0, 0.0]])
    assert unfamiliarity(queries, reference) == pytest.approx([0.0, 1.0, 1 - np.sqrt(0.5)], abs=1e-6)
    assert centroids(np.array([[2.0, 0.0], [0.0, 3.0], [0.0, 1.0]]), np.array([0, 0, 1])) == pytest.approx(
        np.array([[np.sqrt(0.5), np.sqrt(0.5)], [0.0, 1.0]]))


def test_held_out_distances_never_measure_a_sample_against_its_own_fold() -> None:
    """A fold of samples unlike every other fold is far from the other folds' centroids: held out, it counts."""
    x = np.array([[1.0, 0.0]] * 4 + [[0.0, 1.0]] * 2, dtype=np.float32)
    y = np.zeros(6, dtype=np.int64)
    fold_of = np.array([0, 0, 1, 1, 2, 2])
    held = held_out_distances(x, y, fold_of, np.zeros((0, 2), dtype=np.float32))
    assert held[-2:] == pytest.approx([1.0, 1.0])  # fold 2 against folds 0-1: orthogonal, not 0
    assert held[:4] == pytest.approx([1 - np.sqrt(0.5)] * 4)  # folds 0, 1 against a centroid at 45°


def test_fitted_threshold_flags_the_rate_in_domain_and_foreign_images() -> None:
    """Six labels around six directions of a 64-d space: about ``rate`` of fresh in-domain images are flagged,
    images around other directions all are."""
    rng = np.random.default_rng(0)
    centers = np.abs(rng.normal(0, 1, (10, 64)))
    x, y = clusters(rng, centers[:6], 60, 0.6)
    fold_of = rng.integers(0, 5, len(y))
    x_test, _ = clusters(rng, centers[:6], 10, 0.6)
    familiarity = fit_familiarity(x, y, fold_of, x_test, rate=0.03)
    assert familiarity.reference.shape == (6, 64)
    assert familiarity.rule.reference_size == 6
    assert familiarity.rule.in_domain_rate == pytest.approx(0.03, abs=0.01)
    fresh, _ = clusters(rng, centers[:6], 200, 0.6)
    foreign, _ = clusters(rng, centers[6:], 50, 0.6)
    rule = familiarity.rule
    assert np.mean([rule.unfamiliar(s) for s in unfamiliarity(fresh, familiarity.reference)]) < 0.06
    assert np.mean([rule.unfamiliar(s) for s in unfamiliarity(foreign, familiarity.reference)]) > 0.9
