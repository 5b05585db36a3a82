"""Pure functions: splits, retrain trigger, gate, head training, metrics, settings."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from pydantic import ValidationError

from db.models import Split
from model.core.settings import Settings
from model.data.samples import split_for
from model.learning.evaluation import evaluate_probabilities
from model.learning.gate import retrain_due
from model.learning.training import class_weights, train_head


def test_split_is_deterministic_and_about_80_10_10() -> None:
    hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(5000)]
    splits = [split_for(h, key="k" * 64) for h in hashes]
    assert splits == [split_for(h, key="k" * 64) for h in hashes]
    other = [split_for(h, key="another-key") for h in hashes]
    assert sum(a != b for a, b in zip(splits, other, strict=True)) > 1000  # the key decides, not the hash alone
    share = {s: splits.count(s) / len(splits) for s in Split}
    assert share[Split.TRAIN] == pytest.approx(0.8, abs=0.02)
    assert share[Split.VAL] == pytest.approx(0.1, abs=0.015)
    assert share[Split.TEST] == pytest.approx(0.1, abs=0.015)


def test_retrain_due_needs_min_new_samples_unless_forced() -> None:
    assert not retrain_due(new_approved=9, min_new=10).passed
    assert retrain_due(new_approved=10, min_new=10).passed
    assert retrain_due(new_approved=0, min_new=10, force=True).passed
    assert "9" in retrain_due(new_approved=9, min_new=10).reason


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


def test_metrics_on_a_known_example() -> None:
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    m = evaluate_probabilities(["a", "b", "b", "c"], proba, ["a", "b"]).as_dict()  # "c" is unknown to the model
    assert m["n"] == 4 and m["accuracy"] == 0.5
    assert m["per_class"]["a"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 1}
    assert m["per_class"]["b"]["recall"] == 0.5 and m["per_class"]["c"]["support"] == 1
    assert m["confusion_matrix"] == {"labels": ["a", "b", "c"], "matrix": [[1, 0, 0], [1, 1, 0], [0, 1, 0]]}
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.4])))


def test_settings_from_env_and_embedded_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("SPROUT_HOME", str(tmp_path))
    monkeypatch.setenv("SPROUT_GATE_MIN_ACCURACY", "0.8")
    s = Settings()
    assert s.gate_min_accuracy == 0.8 and s.min_new_samples == 10
    assert s.resolved_database_url == f"sqlite:///{tmp_path.resolve()}/sprout.db"
    assert s.resolved_mlflow_uri.startswith("sqlite:///")
    with pytest.raises(ValidationError):
        Settings(s3_endpoint="127.0.0.1:9000")  # S3 without keys is refused
    with pytest.raises(ValidationError):
        Settings(env="production", s3_endpoint="127.0.0.1:9000", s3_access_key="k", s3_secret_key="minioadmin")
