"""Head training (model/learning/training.py): balanced class weights, a reproducible head that learns."""

from __future__ import annotations

import numpy as np
import pytest

from model.learning.training import class_weights, train_head


def test_class_weights_balance_classes() -> None:
    y = np.array([0, 0, 0, 1])
    w = class_weights(y, 2)
    assert w[0] * 3 == pytest.approx(w[1] * 1)


def test_head_is_reproducible_and_learns() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-1, 1, (60, 16)), rng.normal(1, 1, (20, 16))]).astype(np.float32)
    y = np.array([0] * 60 + [1] * 20)
    a = train_head(x, y, x[::4], y[::4], n_classes=2)
    b = train_head(x, y, x[::4], y[::4], n_classes=2)
    np.testing.assert_array_equal(a.weight, b.weight)
    np.testing.assert_array_equal(a.bias, b.bias)
    assert (a.predict_proba(x).argmax(1) == y).mean() > 0.9
    assert a.predict_proba(x).sum(1) == pytest.approx(np.ones(len(x)))
