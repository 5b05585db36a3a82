"""Metrics and cross-validation (model/learning/evaluation.py): a known example; near-duplicate groups kept whole."""

from __future__ import annotations

import numpy as np
import pytest

from db.models import Sample, Split
from model.learning.evaluation import _inner_split, cross_validate, evaluate_probabilities
from model.learning.training_data import TrainingData, development_groups


def test_metrics_on_a_known_example() -> None:
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    m = evaluate_probabilities(["a", "b", "b", "c"], proba, ["a", "b"]).to_dict()  # "c" is unknown to the model
    assert m["n"] == 4 and m["accuracy"] == 0.5
    assert m["per_class"]["a"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 1}
    assert m["per_class"]["b"]["recall"] == 0.5 and m["per_class"]["c"]["support"] == 1
    assert m["confusion_matrix"] == {"labels": ["a", "b", "c"], "matrix": [[1, 0, 0], [1, 1, 0], [0, 1, 0]]}
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.4])))


def near_copies(n_groups: int = 30, copies: int = 3, labels: int = 3, seed: int = 0) -> tuple[np.ndarray, ...]:
    """``n_groups`` images with ``copies`` near copies each (tiny noise), labels spread over the groups."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_groups, 16)).astype(np.float32)
    groups = np.repeat(np.arange(n_groups), copies)
    x = centres[groups] + rng.normal(scale=0.01, size=(len(groups), 16)).astype(np.float32)
    y = np.repeat(np.arange(n_groups) % labels, copies)
    return x, y, groups


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_no_near_duplicate_group_spans_two_folds(seed: int) -> None:
    x, y, groups = near_copies(seed=seed)
    cv = cross_validate(x, y, n_classes=3, seed=seed, groups=groups)
    assert cv.folds == 5
    assert all(len(set(cv.fold_of[groups == g])) == 1 for g in np.unique(groups))
    assert sorted(set(cv.fold_of)) == [0, 1, 2, 3, 4]
    # Without the groups, the folds split them (the optimistic evidence this prevents).
    ungrouped = cross_validate(x, y, n_classes=3, seed=seed)
    assert any(len(set(ungrouped.fold_of[groups == g])) > 1 for g in np.unique(groups))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_inner_weight_decay_split_keeps_groups_whole(seed: int) -> None:
    _, y, groups = near_copies(seed=seed)
    fit, val = _inner_split(y, seed, groups)
    assert len(val) and len(fit) and not set(groups[fit]) & set(groups[val])
    assert 0.1 < len(val) / len(y) < 0.35


def test_singleton_groups_give_the_folds_of_stratified_k_fold() -> None:
    """Where no sample has a near copy, the folds are exactly those of before (StratifiedKFold, same seed)."""
    x, y, _ = near_copies(copies=1, n_groups=60)
    grouped = cross_validate(x, y, n_classes=3, seed=7, groups=np.arange(60))
    plain = cross_validate(x, y, n_classes=3, seed=7)
    np.testing.assert_array_equal(grouped.fold_of, plain.fold_of)
    np.testing.assert_allclose(grouped.logits, plain.logits)


def test_development_groups_are_the_samples_near_duplicate_groups() -> None:
    samples = [Sample(id=1, split=Split.TRAIN), Sample(id=2, split=Split.TEST, duplicate_group=1),
               Sample(id=3, split=Split.VAL, duplicate_group=1), Sample(id=4, split=Split.VAL)]
    masks = {split: np.array([s.split is split for s in samples]) for split in Split}
    data = TrainingData(samples=samples, labels=["a"], x=np.zeros((4, 2)), y=np.zeros(4, dtype=np.int64),
                        masks=masks, n_embedded=0)
    assert development_groups(data).tolist() == [1, 1, 4]
