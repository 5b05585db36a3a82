"""The typed evidence: each record's to_dict is the stored JSON (keys, order, values), from_dict reads it back
unchanged (runs recorded before the rule was stored too), and the gate decides on the typed record."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from model.core.settings import Settings
from model.learning.evaluation import evaluate_probabilities
from model.learning.evidence import GateEvidence, Metrics, Paired
from model.learning.gate import Decision, GateRule, gate
from model.learning.run_record import RunParams, TrainOutcome

RULE = GateRule(min_accuracy=0.9)  # the rule of the stored record below (0.90 was the default floor then)

# As a run of this version stores it (key order included), with a champion and a recall delta.
STORED_EVIDENCE: dict[str, Any] = {
    "n_cv": 280, "cv_folds": 5, "cv_accuracy": 0.95, "cv_accuracy_ci": [0.917, 0.970], "cv_log_loss": 0.153,
    "cv_macro_f1": 0.949, "test_accuracy": 0.9444, "n_test": 36, "test_accuracy_ci": [0.818, 0.985],
    "champion_version": "3", "champion_test_accuracy": 0.9167,
    "paired": {"both": 32, "candidate_only": 2, "champion_only": 1, "neither": 1}, "mcnemar_p": 0.875,
    "recall_deltas": {"ant": {"candidate": 1.0, "champion": 0.9, "delta": 0.1, "support": 10}},
    "temperature": 1.7, "ece_before": 0.08, "ece_after": 0.03,
    "rule": {"min_accuracy": 0.9, "max_regression": 0.02, "alpha": 0.05, "min_class_support": 10},
}


def json_copy(value: Any) -> Any:
    """``value`` as it comes back from a JSON column."""
    return json.loads(json.dumps(value))


def test_metrics_to_dict_is_the_stored_json_and_reads_back() -> None:
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    metrics = evaluate_probabilities(["a", "b", "b"], proba, ["a", "b"])
    stored = metrics.to_dict()
    assert list(stored) == ["n", "accuracy", "macro_f1", "log_loss", "per_class", "confusion_matrix"]
    assert stored["confusion_matrix"] == {"labels": ["a", "b"], "matrix": [[1, 0], [1, 1]]}
    assert stored == json_copy(stored)  # JSON-ready: lists, not tuples
    assert Metrics.from_dict(json_copy(stored)) == metrics


def test_gate_evidence_round_trips_exactly_with_and_without_the_rule() -> None:
    evidence = GateEvidence.from_dict(json_copy(STORED_EVIDENCE))
    assert evidence.rule == RULE and evidence.paired == Paired(both=32, candidate_only=2, champion_only=1, neither=1)
    assert evidence.cv_accuracy_ci == (0.917, 0.970)
    assert json.dumps(evidence.to_dict()) == json.dumps(STORED_EVIDENCE)  # same keys, order and values
    older = {key: value for key, value in STORED_EVIDENCE.items() if key != "rule"}  # runs before the rule was kept
    assert GateEvidence.from_dict(older).rule is None
    assert json.dumps(GateEvidence.from_dict(older).to_dict()) == json.dumps(older)


def test_evidence_with_a_baseline_and_the_champions_cross_validation_round_trips() -> None:
    stored = {**STORED_EVIDENCE, "baseline": {"share": 0.5, "test_share": 0.53, "n_labels": 2},
              "champion_cv": {"accuracy": 0.94, "candidate_accuracy": 0.93, "n": 250, "p": 0.71}}
    evidence = GateEvidence.from_dict(json_copy(stored))
    assert evidence.baseline is not None and evidence.baseline.n_labels == 2
    assert evidence.champion_cv is not None and evidence.champion_cv.p == 0.71
    assert json.dumps(evidence.to_dict()) == json.dumps(stored)


def test_gate_decides_on_the_typed_evidence_with_the_settings_rule() -> None:
    evidence = GateEvidence.from_dict(STORED_EVIDENCE)
    decision = gate(evidence, GateRule.from_settings(Settings(_env_file=None)))
    assert decision.passed and "not worse than the champion v3" in decision.reason, decision.reason
    assert decision.to_dict() == {"passed": True, "reason": decision.reason, "evidence": STORED_EVIDENCE}
    stricter = GateRule(min_accuracy=0.96)
    refused = gate(evidence, stricter)
    assert not refused.passed and "< minimum 0.960" in refused.reason


def test_run_params_keep_what_a_training_run_and_a_finished_run_store() -> None:
    training = {"warnings": ["Label 'x' was left out: ..."]}
    assert RunParams.from_dict(training).to_dict() == training
    finished = {"seed": 0, "weight_decay": 0.001, "model_uri": "models:/m-1", "counts": {"train": 8, "val": 1,
                "test": 1}, "warnings": [], "candidates": [{"backbone": "efficientnet_lite0", "accuracy": 0.9,
                "accuracy_ci": [0.6, 0.98], "log_loss": 0.3, "folds": 2, "weight_decay": 0.001, "n_embedded": 10}],
                "evidence": STORED_EVIDENCE}
    params = RunParams.from_dict(json_copy(finished))
    assert params.model_uri == "models:/m-1" and params.candidates and params.candidates[0].folds == 2
    assert json.dumps(params.to_dict()) == json.dumps(finished)
    assert RunParams.from_dict(None) == RunParams()


def test_a_train_outcome_prints_the_json_of_before() -> None:
    outcome = TrainOutcome(skipped=True, reason="only 3 new approved samples, 10 needed")
    assert outcome.to_dict() == {
        "skipped": True, "reason": "only 3 new approved samples, 10 needed", "run_id": None, "mlflow_run_id": None,
        "backbone": None, "labels": [], "counts": {}, "n_embedded": 0, "metrics": None, "champion_version": None,
        "champion_metrics": None, "gate": None, "version": None, "promoted": False, "warnings": [],
        "candidates": []}
    decided = TrainOutcome(skipped=False, reason="r", gate=Decision(True, "r", GateEvidence.from_dict(STORED_EVIDENCE)))
    assert decided.to_dict()["gate"]["evidence"] == STORED_EVIDENCE


@pytest.mark.parametrize("interval", [None, [0.5, 0.9]])
def test_an_interval_is_a_json_list_or_null(interval: list[float] | None) -> None:
    stored = STORED_EVIDENCE | {"test_accuracy_ci": interval}
    assert GateEvidence.from_dict(stored).to_dict()["test_accuracy_ci"] == interval
