"""model.learning.abstain: per-label confidence thresholds fitted to a precision target on out-of-fold predictions."""

from __future__ import annotations

import numpy as np
import pytest

from model.learning.abstain import fit_abstain_rule, lowest_threshold


def test_the_lowest_threshold_whose_kept_predictions_meet_the_target() -> None:
    confidence = np.array([0.99, 0.95, 0.90, 0.80, 0.70, 0.60])
    right = np.array([True, True, True, False, True, False])
    # kept at ≥0.90: 3/3; at ≥0.80: 3/4; at ≥0.70: 4/5 = 0.8; at ≥0.60: 4/6
    assert lowest_threshold(confidence, right, 1.0) == 0.90
    assert lowest_threshold(confidence, right, 0.8) == 0.70  # the lowest, though 0.80 alone misses the target
    assert lowest_threshold(confidence, right, 0.6) == 0.60
    assert lowest_threshold(confidence[::-1], right[::-1], 0.8) == 0.70  # order does not matter


def test_a_threshold_keeps_ties_together() -> None:
    confidence = np.array([0.9, 0.8, 0.8, 0.8])
    right = np.array([True, True, False, False])  # at 0.8 all three ties come in: 2/4
    assert lowest_threshold(confidence, right, 0.75) == 0.9


def test_no_threshold_when_the_target_is_never_met() -> None:
    assert lowest_threshold(np.array([0.9, 0.8]), np.array([False, True]), 0.95) is None
    assert lowest_threshold(np.zeros(0), np.zeros(0, dtype=bool), 0.95) is None


def test_a_rule_per_label_on_several_labels() -> None:
    labels = ["a", "b", "c", "d"]
    # columns a..d; "a" predictions are right when confident; "b" never right; "c" always right; "d" never predicted
    proba = np.array([[0.9, 0.05, 0.05, 0.0], [0.8, 0.1, 0.1, 0.0], [0.5, 0.3, 0.2, 0.0],  # a, a, a
                      [0.1, 0.8, 0.1, 0.0], [0.2, 0.7, 0.1, 0.0],  # b, b
                      [0.1, 0.1, 0.8, 0.0], [0.2, 0.2, 0.6, 0.0]])  # c, c
    y = np.array([0, 0, 1, 0, 2, 2, 2])
    rule = fit_abstain_rule(proba, y, labels, target=0.95)
    assert rule.thresholds == {"a": 0.8, "b": None, "c": 0.6, "d": None}
    assert rule.coverage == pytest.approx(4 / 7)  # the two confident "a" and both "c"
    assert rule.precision == 1.0
    assert not rule.abstains("a", 0.85) and rule.abstains("a", 0.6)
    assert rule.abstains("b", 0.99)  # never reaches the target: always abstains
    assert not rule.abstains("c", 0.6)


def test_held_out_precision_meets_the_target_on_synthetic_scores() -> None:
    """Calibrated scores (right with probability = confidence): the kept out-of-fold predictions reach the target,
    and so do fresh ones from the same distribution, within noise."""
    rng = np.random.default_rng(0)
    labels = [f"l{i}" for i in range(5)]

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        confidence = rng.uniform(0.2, 1.0, n)
        predicted = rng.integers(0, 5, n)
        right = rng.random(n) < confidence
        y = np.where(right, predicted, (predicted + rng.integers(1, 5, n)) % 5)
        proba = np.full((n, 5), 0.0)
        proba[np.arange(n), predicted] = confidence
        for i in range(n):  # the rest spread below the top
            others = [c for c in range(5) if c != predicted[i]]
            proba[i, others] = (1 - confidence[i]) / 4
        return proba, y

    proba, y = draw(4000)
    rule = fit_abstain_rule(proba, y, labels, target=0.9)
    assert rule.precision is not None and rule.precision >= 0.9
    assert 0.1 < rule.coverage < 0.5
    fresh, y_fresh = draw(4000)
    kept = np.array([not rule.abstains(labels[p.argmax()], p.max()) for p in fresh])
    assert (fresh[kept].argmax(axis=1) == y_fresh[kept]).mean() == pytest.approx(0.9, abs=0.03)
