"""Metrics (model/learning/evaluation.py) on a known example."""

from __future__ import annotations

import numpy as np
import pytest

from model.learning.evaluation import evaluate_probabilities


def test_metrics_on_a_known_example() -> None:
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    m = evaluate_probabilities(["a", "b", "b", "c"], proba, ["a", "b"]).to_dict()  # "c" is unknown to the model
    assert m["n"] == 4 and m["accuracy"] == 0.5
    assert m["per_class"]["a"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 1}
    assert m["per_class"]["b"]["recall"] == 0.5 and m["per_class"]["c"]["support"] == 1
    assert m["confusion_matrix"] == {"labels": ["a", "b", "c"], "matrix": [[1, 0, 0], [1, 1, 0], [0, 1, 0]]}
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.4])))
